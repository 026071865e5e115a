-- A paused webhook subscription gets no deliveries: expiry warnings that
-- fall due meanwhile are recorded (so they are not sent later) but not
-- sent, and pending deliveries wait. `clavis restore` pauses every webhook
-- of the installation it restores, so a restored copy does not repeat the
-- original's warnings until an operator resumes them. NULL: active;
-- otherwise when it was paused.
ALTER TABLE webhook_subscriptions ADD COLUMN paused_at TIMESTAMPTZ;
