-- +goose Up
-- Challenges of the built-in captcha, kept here so that any instance can
-- check an answer to a picture another instance drew. answer_hash is an
-- HMAC of the challenge id and its digits under a key derived from the
-- system secret: six digits are a million guesses, so a plain hash would
-- hand them to whoever reads the table. A row is deleted by the one
-- request that redeems it, right answer or wrong.
CREATE TABLE captcha_challenges (
    id TEXT PRIMARY KEY,
    answer_hash TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX captcha_challenges_expires ON captcha_challenges(expires_at);

-- +goose Down
DROP TABLE captcha_challenges;
