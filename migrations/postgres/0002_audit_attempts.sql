-- How many attempts an audit entry stands for: 1, except for the aggregate of repeated refusals
-- of one session within a minute.
ALTER TABLE audit_log ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
