"""`python -m blog migrate | serve [--migrate]`."""

from blog.settings import BlogSettings
from comm.cli import main

if __name__ == "__main__":
    main(package="blog", settings=BlogSettings)
