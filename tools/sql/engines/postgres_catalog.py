"""What the PostgreSQL engine reads from the catalog: the exposed tables and columns (information_schema),
their comments (pg_description), declared foreign keys, a fingerprint, and type names in DuckDB's words."""

from __future__ import annotations

# PostgreSQL's type names in DuckDB's vocabulary (tools/sql/introspect.py: one vocabulary for all).
TYPES = {
    "character varying": "VARCHAR", "text": "VARCHAR", "character": "VARCHAR", "name": "VARCHAR",
    "citext": "VARCHAR", "uuid": "UUID", "integer": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT",
    "double precision": "DOUBLE", "real": "FLOAT", "numeric": "DECIMAL", "boolean": "BOOLEAN", "date": "DATE",
    "timestamp without time zone": "TIMESTAMP", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "time without time zone": "TIME", "interval": "INTERVAL", "bytea": "BLOB", "json": "JSON", "jsonb": "JSON",
}  # fmt: skip
# The exposed tables: those of the role's search_path it may read (no system schemas).
VISIBLE = (
    "t.table_schema = ANY (current_schemas(false)) AND t.table_type IN ('BASE TABLE', 'VIEW') "
    "AND t.table_name NOT LIKE '\\_%' AND has_table_privilege(format('%I.%I', t.table_schema, t.table_name), 'SELECT')"
)


NAMES_SQL = (
    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
    f"JOIN information_schema.tables t USING (table_schema, table_name) WHERE {VISIBLE}"
)
TABLES_SQL = (
    "SELECT t.table_name, coalesce(d.description, ''), greatest(coalesce(k.reltuples, 0), 0) "
    "FROM information_schema.tables t "
    "JOIN pg_catalog.pg_class k ON k.oid = format('%I.%I', t.table_schema, t.table_name)::regclass "
    "LEFT JOIN pg_catalog.pg_description d ON d.objoid = k.oid AND d.classoid = 'pg_catalog.pg_class'::regclass "
    f"AND d.objsubid = 0 WHERE {VISIBLE} ORDER BY t.table_name"
)
# information_schema.columns.ordinal_position is the attribute number pg_description keys comments by.
COLUMNS_SQL = (
    "SELECT c.table_name, c.column_name, c.data_type, coalesce(d.description, '') "
    "FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name) "
    "LEFT JOIN pg_catalog.pg_description d ON d.objoid = format('%I.%I', c.table_schema, c.table_name)::regclass "
    "AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = c.ordinal_position "
    f"WHERE {VISIBLE} ORDER BY c.table_name, c.ordinal_position"
)
FOREIGN_KEYS_SQL = (
    "SELECT k.constraint_name, k.table_name, k.column_name, r.table_name, r.column_name "
    "FROM information_schema.referential_constraints rc "
    "JOIN information_schema.key_column_usage k ON k.constraint_schema = rc.constraint_schema "
    "AND k.constraint_name = rc.constraint_name "
    "JOIN information_schema.key_column_usage r ON r.constraint_schema = rc.unique_constraint_schema "
    "AND r.constraint_name = rc.unique_constraint_name AND r.ordinal_position = k.position_in_unique_constraint "
    "WHERE k.table_schema = ANY (current_schemas(false)) ORDER BY k.constraint_name, k.ordinal_position"
)
FINGERPRINT_SQL = (
    "SELECT md5(string_agg(concat_ws('|', c.table_name, c.column_name, c.data_type, "
    "col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position), "
    "obj_description(format('%I.%I', c.table_schema, c.table_name)::regclass, 'pg_class')), ',' "
    "ORDER BY c.table_name, c.ordinal_position)), "
    "(SELECT coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0) FROM pg_catalog.pg_stat_user_tables s "
    "WHERE s.schemaname = ANY (current_schemas(false))) "
    f"FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name) "
    f"WHERE {VISIBLE}"
)
