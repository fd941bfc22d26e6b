-- The login role sqlagent connects as: it can read the exposed tables and nothing else.
-- Run it as the owner of the tables (or a superuser), connected to the database that holds them.
-- data/load_postgres.py fills in {reader}, {password}, {database} and {schema}; for your own
-- database replace them by hand (docs/engines.md), e.g. with psql's \set and :"reader".

-- No ownership of anything, no role attributes beyond LOGIN, a few connections at most.
CREATE ROLE {reader} LOGIN PASSWORD {password}
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT 16;

-- Every transaction read-only unless it asks otherwise (sqlagent also opens each one READ ONLY),
-- bounded in time and in temporary files (temp_file_limit can only be set here, by a superuser).
ALTER ROLE {reader} SET default_transaction_read_only = on;
ALTER ROLE {reader} SET statement_timeout = '60s';
ALTER ROLE {reader} SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE {reader} SET temp_file_limit = '1GB';
ALTER ROLE {reader} SET search_path = {schema};

-- Connect, but no temporary tables (TEMPORARY is not granted), and nothing from PUBLIC's defaults.
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {reader};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Read the exposed schema: USAGE to see it, SELECT on its tables; no CREATE.
GRANT USAGE ON SCHEMA {schema} TO {reader};
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};

-- Functions PUBLIC may call that reach past one query: ending or signalling other sessions of the
-- same role (the agent's own pooled connections) and session-level advisory locks that outlive the
-- transaction. Revoked in this database only (pg_catalog's privileges are per database).
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_lock(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_lock_shared(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_lock(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_lock_shared(integer, integer) FROM PUBLIC;
