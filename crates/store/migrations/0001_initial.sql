-- roster's state store.
--
-- Kept portable where it costs nothing, for the PostgreSQL store to come: TEXT and INTEGER columns
-- only; dates as ISO 8601 text (`2026-03-10`); timestamps as RFC 3339 UTC text with a fixed six
-- fractional digits (`2026-03-10T08:00:00.000000Z`), so text order is time order; JSON documents as
-- TEXT; booleans as INTEGER 0/1. Login names and DNs compare case-insensitively, as directories
-- compare them: their unique indexes and lookups use lower(), which SQLite folds for ASCII only;
-- login names are ASCII by construction.

-- Runs come first: the audit trail and the source counts point at them.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    command       TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    -- NULL while the run is going (or when its process died).
    finished_at   TEXT,
    as_of         TEXT NOT NULL,
    config_hash   TEXT NOT NULL,
    actor         TEXT NOT NULL,
    -- JSON array of the safety limits a person overrode for this run.
    overrides     TEXT NOT NULL,
    -- running | success | partial | failed | blocked | planned
    status        TEXT NOT NULL,
    -- JSON: the plan's summary; NULL until finished.
    summary       TEXT,
    -- Operations that failed; NULL until finished.
    failed        INTEGER,
    -- JSON object: records read per complete source; NULL until finished.
    source_counts TEXT,
    -- The plan as JSON, when the command made or applied one.
    plan          TEXT
);

-- One row per person roster knows, as of the last applied run.
CREATE TABLE persons (
    key             TEXT PRIMARY KEY NOT NULL,
    login           TEXT,
    state           TEXT NOT NULL,
    -- JSON: source name -> attribute -> value; a text value is a JSON string, a date is
    -- {"date": "YYYY-MM-DD"}, so the two never blur.
    records         TEXT NOT NULL,
    eval_hash       TEXT NOT NULL,
    missing_reads   INTEGER NOT NULL DEFAULT 0,
    left_on         TEXT,
    next_transition TEXT,
    -- JSON {"reason": .., "until": ..}; NULL when not on hold.
    hold            TEXT
);
CREATE UNIQUE INDEX persons_login ON persons (lower(login));

-- A person's account in a target. No foreign key to persons: a joiner's account is linked as its
-- create lands, before the person row is committed at the end of the run.
CREATE TABLE links (
    target    TEXT NOT NULL,
    person    TEXT NOT NULL,
    object_id TEXT NOT NULL,
    dn        TEXT NOT NULL,
    enabled   INTEGER NOT NULL,
    -- JSON: attribute -> values roster last wrote.
    vals      TEXT NOT NULL,
    -- 1 while an initial password is still to be set (or was not delivered).
    password_pending INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, person),
    UNIQUE (target, object_id)
);
CREATE INDEX links_person ON links (person);

-- Login names kept after their person was purged or rescinded: never given to anyone else.
CREATE TABLE tombstones (
    login     TEXT PRIMARY KEY NOT NULL,
    person    TEXT NOT NULL,
    purged_on TEXT NOT NULL
);
CREATE UNIQUE INDEX tombstones_login ON tombstones (lower(login));

-- Records in the last good complete read of each source, for the shrink limit.
CREATE TABLE source_counts (
    source      TEXT PRIMARY KEY NOT NULL,
    count       INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    run         INTEGER NOT NULL REFERENCES runs (id)
);

-- Who/what/why/before/after/when/which run, one row per operation of a run. Written as "intent"
-- before the operation is sent, completed when its outcome is known.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run         INTEGER NOT NULL REFERENCES runs (id),
    at          TEXT NOT NULL,
    op_id       INTEGER NOT NULL,
    person      TEXT,
    target      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dn          TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- JSON documents derived from the operation; see `roster_store::AuditEntry`.
    before_vals TEXT,
    after_vals  TEXT,
    -- intent | done | failed | unknown | skipped
    outcome     TEXT NOT NULL,
    error       TEXT,
    UNIQUE (run, op_id)
);
CREATE INDEX audit_person ON audit (person);
-- Creates sent whose outcome never arrived, for the snapshot: few rows, however long the trail.
CREATE INDEX audit_unfinished_creates ON audit (target, person)
    WHERE kind = 'create' AND outcome IN ('intent', 'unknown');
CREATE INDEX audit_dn ON audit (lower(dn));
CREATE INDEX audit_at ON audit (at);
