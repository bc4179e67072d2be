-- One database per service (docs/architecture.md §1), created when the PostgreSQL volume is first initialised.
-- Each service also creates its own database if missing (`serve --migrate`), so this is belt and braces;
-- the services' migrations create the tables.
CREATE DATABASE auth;
CREATE DATABASE blog;
CREATE DATABASE "user"; -- USER is a reserved word
CREATE DATABASE comment;
