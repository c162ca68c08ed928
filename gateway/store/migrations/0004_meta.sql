-- Facts about the installation itself (e.g. which server secret this database belongs to).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
