"""`python -m user migrate | serve [--migrate]`."""

from comm.cli import main
from user.settings import UserSettings

if __name__ == "__main__":
    main(package="user", settings=UserSettings)
