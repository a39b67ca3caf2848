-- A plan's JSON larger than one value may be (SQLite and PostgreSQL both stop near 1 GB, and a first
-- load of a million accounts is more) is kept in parts: the first in `runs.plan` or
-- `held_plans.plan` as before, the rest here, in order; `plan_parts` says how many rows follow.
ALTER TABLE runs ADD COLUMN plan_parts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE held_plans ADD COLUMN plan_parts BIGINT NOT NULL DEFAULT 0;
CREATE TABLE plan_parts (
    -- 'run' (runs.id) or 'held' (held_plans.id)
    owner TEXT NOT NULL,
    id    BIGINT NOT NULL,
    -- 1, 2, ...: the part after the owner's own column
    part  BIGINT NOT NULL,
    text  TEXT NOT NULL,
    PRIMARY KEY (owner, id, part)
);
