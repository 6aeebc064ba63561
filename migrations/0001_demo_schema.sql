-- The demo application: users and their orders, co-located by user id, and a reference table of
-- countries copied to every shard.
CREATE TABLE IF NOT EXISTS countries (
    code text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    country text REFERENCES countries (code),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    amount numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
