// Package breach answers the password policy's check_breached rule (error
// code password_breached): is this password known to have leaked, or so
// common that attackers try it first?
//
// It has two parts, usually combined by a Checker.
//
// The offline list, from Offline, ships inside the binary: the 100,000 most
// common passwords of a public leaked-password list (data/README.md names
// it). It is a sorted array of the first 8 bytes of each password's SHA-1,
// 101,355 keys in 792 KiB of read-only data, plus a 16 KiB bucket table
// built on first use. Truncating the hashes makes a false positive possible
// but negligible: about 1 in 10^14 per lookup. A lookup hashes the password
// as typed and in lowercase and takes about 200 nanoseconds without
// allocating (BenchmarkContains); SHA-1 is most of that.
//
// Lowercase matters because leaked-password lists are mostly lowercase:
// "Password1" and "PASSWORD1" are refused when "password1" is listed. Each
// listed password is also stored in lowercase, so the match works the other
// way too. Other variants (leetspeak, an appended year) are not tried; the
// online check covers those that were actually used.
//
// The online check, HIBP, asks the Have I Been Pwned range API with only
// the first 5 hex characters of the password's SHA-1 (k-anonymity) and a
// padded answer, and finds the rest of the hash locally. It returns errors
// rather than guessing; Checker.Mode (FailOpen or FailClosed) decides what
// an outage means for the password.
//
// The package imports only the standard library and nothing else of the
// server, so the policy engine and any command can use it.
package breach
