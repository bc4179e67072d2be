"""`python -m auth migrate | serve [--migrate] | grant-role USERNAME ROLE`."""

import argparse

from auth import service
from auth.settings import AuthSettings
from comm.callers import ROLES
from comm.cli import main
from comm.db import create_engine, create_sessionmaker


def _configure_grant_role(parser: argparse.ArgumentParser) -> None:
    parser.description = "Give a user a role (moderator or admin)."
    parser.add_argument("username")
    parser.add_argument("role", choices=sorted(ROLES))


async def _grant_role(args: argparse.Namespace) -> None:
    engine = create_engine(AuthSettings().database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await service.grant_role(session, username=args.username, role=args.role)
        print(f"{user.username} now has roles: {', '.join(user.roles)}")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main(package="auth", settings=AuthSettings, commands={"grant-role": (_configure_grant_role, _grant_role)})
