-- Every run's snapshot reads the groups roster owns (each group it created or added a member to,
-- as the audit trail records): without an index of its own that read went through the whole
-- trail, 15 s at a million accounts and growing with every run. The index holds those rows' target
-- and DN only, so the read never touches the rows themselves.
CREATE INDEX audit_managed_groups ON audit (target, dn)
    WHERE kind IN ('create_group', 'add_member') AND outcome = 'done';
