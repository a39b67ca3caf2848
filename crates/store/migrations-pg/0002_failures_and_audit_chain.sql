-- Persons whose operations keep failing in a target, and the keyed hash chain over the audit trail.
-- From here on, runs.status may also be 'operator': an operator's action on the store (a release),
-- recorded as a finished run so that its audit entries have a run and an actor.

-- A person whose operations in a target did not all land, run after run. Updated when a run
-- finishes, from that run's audit entries: a run in which any of the person's operations there
-- failed, stayed unknown or was skipped adds one; a run in which all of them landed removes the row;
-- a run with none of their operations leaves it. The planner quarantines a person in a target from
-- `safety.quarantine_after_failed_runs` on, until `roster release` removes the row.
CREATE TABLE failures (
    target     TEXT NOT NULL,
    person     TEXT NOT NULL,
    -- Consecutive runs with a failure.
    runs       BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    last_run   BIGINT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (target, person)
);

-- The audit trail's chain: one event per write of an audit entry (its intent, then its outcome),
-- in the order written. See `roster_store::chain` for what each column covers.
CREATE TABLE audit_chain (
    -- 1, 2, 3, ... without gaps.
    seq    BIGINT PRIMARY KEY NOT NULL,
    -- The audit entry written. No foreign key: a removed entry must leave its events behind, so
    -- that verification can name it.
    entry  BIGINT NOT NULL,
    -- Which key made `mac` (a check value derived from the key, never the key).
    key_id TEXT NOT NULL,
    -- SHA-256 of the entry's canonical bytes as this write left them.
    digest BYTEA NOT NULL,
    -- HMAC-SHA256(key, previous event's mac || seq || entry || digest).
    mac    BYTEA NOT NULL
);
CREATE INDEX audit_chain_entry ON audit_chain (entry, seq);

-- Audit entries written before the chain existed (stores made by roster 0.1 before this
-- migration) are not covered by it: the highest such entry id, 0 for a store that never had one.
CREATE TABLE audit_chain_start (
    legacy_last_entry BIGINT NOT NULL
);
INSERT INTO audit_chain_start (legacy_last_entry) SELECT coalesce(max(id), 0) FROM audit;
