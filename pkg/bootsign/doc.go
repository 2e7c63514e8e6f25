// Package bootsign reads, verifies and writes the signed state of /boot in
// Heads' formats, byte for byte: a /boot signed by Heads verifies here and
// the reverse (checked against real sha256sum, find, sort and gpg in the
// tests).
//
// Files (all in the /boot root; see reference/heads.md 3.1-3.3):
//
//	kexec_hashes.txt    sha256sum lines "<64 hex>  ./<path>" of every regular
//	                    file except paths starting with ./kexec
//	                    (cd /boot; find ./ -type f ! -path './kexec*' -print0 |
//	                    xargs -0 sha256sum). Heads writes find order; goheads
//	                    writes byte-sorted paths and accepts any order.
//	kexec_tree.txt      every path except ./kexec*, "./" included, each NUL-
//	                    terminated, byte-sorted (find ./ ! -path './kexec*'
//	                    -print0 | sort -z).
//	kexec_rollback.txt  one sha256sum line of the TPM counter file,
//	                    "<64 hex>  /tmp/counter-<id>" (see Counter).
//	kexec_default.N.txt, kexec_default_hashes.txt  the default entry.
//	kexec.sig           ASCII-armoured detached OpenPGP signature over the
//	                    sha256sum listing of the bare names of all kexec*.txt
//	                    present, in glob order (SignedMessage).
//	kexec.staging/      goheads only: a signing in progress (see Sign).
//
// Where goheads deliberately differs from Heads, and why:
//   - A missing kexec.sig is ErrUnsigned, never "verified" (Heads skips the
//     check silently).
//   - Signatures by revoked keys, or by keys expired when they signed, are
//     refused (gpgv accepts them); see keyring.VerifyDetached.
//   - CheckHashes also refuses regular files missing from kexec_hashes.txt
//     and listed files that became symlinks (Heads' checks miss both).
//   - kexec*.txt and kexec.sig must be regular files (Heads would follow a
//     symlink).
//   - Sign writes through a journal so that a crash never leaves /boot with
//     neither the old nor the new signed state, signs before it increments
//     the counter, and does not sign the package-trigger logs it deletes.
//   - With a rollback counter configured, a signed set without
//     kexec_rollback.txt is refused at verification (Heads' boot check
//     skips it; only its gui-init preflight complains).
//
// Kept from Heads for compatibility: SHA-1 signatures still verify (with a
// note), and kexec.sig made over "/boot/kexec_*.txt" names by Heads
// releases before 2026 verifies (Report.LegacyPaths).
package bootsign
