-- Users an HR system pushed to the daemon's SCIM endpoint, per `kind = "scim"` source: the
-- resource as JSON (without meta, without password), its userName folded to lower case for
-- SCIM's case-insensitive uniqueness, and meta's times and version. The source reads them at the
-- next run as its records.
CREATE TABLE scim_users (
    source         TEXT NOT NULL,
    id             TEXT NOT NULL,
    user_name_key  TEXT NOT NULL,
    resource       TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created        TEXT NOT NULL,
    last_modified  TEXT NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (source, user_name_key);
