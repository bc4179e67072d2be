"""`python -m gateway serve`."""

from comm.cli import main
from gateway.settings import GatewaySettings

if __name__ == "__main__":
    main(package="gateway", settings=GatewaySettings)
