-- Support requests: a tenant user reports an event or asks for help (お問い合わせ /
-- 事象報告); operators read them in the console, reply and close them. Each request is a
-- thread of messages. A requester whose account is deleted leaves the request behind,
-- without the link to the account.
CREATE TABLE support_requests (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT REFERENCES tenant_users (id),
    requester TEXT NOT NULL,
    category TEXT NOT NULL CHECK (category IN ('question', 'incident', 'security-event')),
    subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    closed_ms BIGINT
);
CREATE INDEX support_requests_tenant ON support_requests (tenant_id, updated_ms);
CREATE INDEX support_requests_status ON support_requests (status, updated_ms);

CREATE TABLE support_messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    request_id TEXT NOT NULL REFERENCES support_requests (id),
    author TEXT NOT NULL,
    from_operator BOOLEAN NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX support_messages_request ON support_messages (request_id, created_ms);
