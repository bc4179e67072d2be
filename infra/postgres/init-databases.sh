#!/bin/sh
# One database per service (docs/architecture.md §1), each owned by the service's own role (`<service>_app`, no
# superuser, no CREATEDB or CREATEROLE), with CONNECT revoked from PUBLIC so that no other role but the superuser
# reaches it. The postgres image runs this as the superuser on the first start of an empty volume; the passwords
# come from docker-compose.yml (POSTGRES_<SERVICE>_PASSWORD, development defaults there). A service's
# `serve --migrate` finds its database there and never needs to create one (comm.db.ensure_database); its
# migrations create the tables in `public`, which PostgreSQL 15 gives to the database owner.
set -eu

create() { # create SERVICE PASSWORD
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v service="$1" -v role="$1_app" -v password="$2" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"role";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
}

create auth "$POSTGRES_AUTH_PASSWORD"
create blog "$POSTGRES_BLOG_PASSWORD"
create user "$POSTGRES_USER_PASSWORD"
create comment "$POSTGRES_COMMENT_PASSWORD"
