-- privca store schema, version 3: services' own small state (the notifier's delivery
-- cursors, sent reminders and delivery log; Store::state_get/put/list).
CREATE TABLE service_state (
    namespace text NOT NULL,
    key       text NOT NULL,
    value     bytea NOT NULL,
    PRIMARY KEY (namespace, key)
);
