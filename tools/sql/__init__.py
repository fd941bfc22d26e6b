"""The SQL layer under the tools: database, introspection, value index, descriptions, policy, guard, sandbox."""
