-- Plans blocked by a safety limit or an approval rule, kept until an approver decides. Portable SQL:
-- TEXT and INTEGER only, as in 0001.
CREATE TABLE held_plans (
    id              INTEGER PRIMARY KEY NOT NULL,
    -- The run that was blocked.
    run             INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    -- Who ran it (`serve:JOB`, `api:NAME`, a login).
    actor           TEXT NOT NULL,
    as_of           TEXT NOT NULL,
    config_hash     TEXT NOT NULL,
    -- The plan as JSON (docs/plan-format.md): what the approver sees and approves.
    plan            TEXT NOT NULL,
    -- waiting | approved | rejected | applied | expired
    status          TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      TEXT,
    decision_reason TEXT,
    -- The run that applied it, once applied.
    applied_run     INTEGER,
    -- The held plan it was checked against when applied, for one made of what changed since.
    follows         INTEGER
);
CREATE INDEX held_plans_status ON held_plans (status);
