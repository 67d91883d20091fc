"""Storage: encrypted files, the object store, key rotation, uploads, table files."""
