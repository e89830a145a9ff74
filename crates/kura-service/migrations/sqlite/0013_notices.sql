-- Notices from the provider to tenants: service changes, maintenance windows and
-- security incidents, in Japanese and/or English, to every tenant or to some. An update
-- (an incident's follow-up) raises the revision, and a user has read a notice when they
-- marked its current revision read.
CREATE TABLE notices (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('change', 'maintenance', 'incident')),
    title_ja TEXT,
    title_en TEXT,
    body_ja TEXT,
    body_en TEXT,
    starts_ms BIGINT,
    ends_ms BIGINT,
    all_tenants BOOLEAN NOT NULL,
    author TEXT NOT NULL,
    published_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    revision BIGINT NOT NULL
);
CREATE INDEX notices_by_time ON notices (published_ms);

CREATE TABLE notice_tenants (
    notice_id TEXT NOT NULL REFERENCES notices (id),
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    PRIMARY KEY (notice_id, tenant_id)
);
CREATE INDEX notice_tenants_tenant ON notice_tenants (tenant_id);

CREATE TABLE notice_reads (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES tenant_users (id),
    notice_id TEXT NOT NULL REFERENCES notices (id),
    revision BIGINT NOT NULL,
    read_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, notice_id)
);
