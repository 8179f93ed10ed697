// Package config owns Portcullis's runtime configuration: the Config type,
// its defaults, loading it from a TOML file and PORTCULLIS_* environment
// variables, and validating it.
//
// Loading is done in fixed steps so that the source of every value is
// predictable: the file is decoded strictly (unknown keys and wrongly typed
// values are errors naming the key path), environment variables override the
// file, defaults fill whatever neither of them set, and Validate checks the
// result. Every problem found along the way is reported together in one
// *Error, because fixing a configuration one error per restart is tedious.
//
// The environment variable for a key is derived from its TOML path, so
// server.listen is PORTCULLIS_SERVER_LISTEN; adding a field to Config makes it
// overridable without further code. A PORTCULLIS_ variable that matches no key
// is an error, which catches typos that would otherwise be silently ignored.
// PORTCULLIS_CONFIG is the one exception: it is reserved for naming the
// configuration file itself.
//
// With a file, relative SQLite and secret file paths are resolved against
// the file's folder, so commands run from anywhere share one database;
// paths from the environment stay relative to the working directory.
//
// [scopes.descriptions] is the one table whose keys are data (scope names)
// rather than configuration keys; its problems are reported under the
// quoted name, such as scopes.descriptions."bad scope", and the environment
// gives it as a JSON object.
//
// The checked-in config.toml at the repository root documents every key with
// its default value; a test keeps it equal to Default.
//
// The policy tables ([token], [session], … [mfa], [device_flow], one per
// section of policies.Sections) are the policy engine's own types, checked by
// the policy's Validate, so the file and the admin API accept the same keys
// under the same rules.
//
// [webauthn] is deployment wiring beside the policy: the relying party id,
// name and origins passkeys are bound to, each defaulting to the issuer
// (WebAuthnConfig.Resolve), and checked here so that a mistake names its key
// at start-up instead of failing the first ceremony in a browser. The
// package imports only policies, fielderr and ipnets (trusted_proxies is
// parsed as the server parses it) from the project.
package config
