#!/bin/bash
# Regenerates the keyring fixtures with real GnuPG (made with gpg 2.2.40).
# The fixtures let the keyring tests run where gpg is not installed; the
# tests in gpg_test.go redo the same things live with gpg when it is.
#
#   cd pkg/keyring/testdata && ./gen.sh
#
# Outputs:
#   pubring.kbx         gpg 2.2 keybox: rsa (rsa3072 [SC]) and ed (ed25519 [C],
#                       ed25519 signing subkey [S], cv25519 subkey [E])
#   pub.gpg, pub.asc    `gpg --export` and `gpg --armor --export` of the same
#   keys.colons         `gpg --with-colons --fixed-list-mode -k` (expected listing)
#   data.txt            signed data
#   rsa.sig, rsa.asc    rsa signatures over data.txt (binary, armoured)
#   ed.sig, ed.asc      ed signatures (made by the signing subkey)
#   other.asc           signature by a key that is not in pubring.kbx
#   revoked.asc, revoked.sig.asc         revoked key + its signature
#   revsub.asc, revsub.sig.asc           key with revoked signing subkey + sig
#   expired.asc, expired.sig.asc         key that had expired when it signed
#   expired-after.asc, expired-after.sig.asc  key that expired after signing
set -euo pipefail
out=$(pwd)
work=$(mktemp -d /tmp/kr-gen.XXXXXX)
trap 'for h in "$work"/*/; do GNUPGHOME=$h gpgconf --kill all || true; done; rm -rf "$work"' EXIT

g() { gpg --batch --pinentry-mode loopback --passphrase '' "$@"; }
fpr() { gpg --with-colons --fixed-list-mode -k "$1" | awk -F: '$1=="fpr"{print $10; exit}'; }

printf 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff  kexec_hashes.txt\n' >"$out/data.txt"

# The ROM keyring.
export GNUPGHOME=$work/rom; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20240101T000000 --quick-gen-key 'Heads Test RSA <rsa@example.org>' rsa3072 sign never
g --faked-system-time 20240101T000000 --quick-gen-key 'Heads Test Ed <ed@example.org>' ed25519 cert never
ED=$(fpr ed@example.org)
g --faked-system-time 20240102T000000 --quick-add-key "$ED" ed25519 sign never
g --faked-system-time 20240102T000000 --quick-add-key "$ED" cv25519 encr never
cp "$GNUPGHOME/pubring.kbx" "$out/pubring.kbx"
gpg --export >"$out/pub.gpg"
gpg --armor --export >"$out/pub.asc"
gpg --with-colons --fixed-list-mode -k >"$out/keys.colons"
g --faked-system-time 20240201T000000 -u "$(fpr rsa@example.org)" --detach-sign -o "$out/rsa.sig" "$out/data.txt"
g --faked-system-time 20240201T000000 -u "$(fpr rsa@example.org)" --detach-sign -a -o "$out/rsa.asc" "$out/data.txt"
g --faked-system-time 20240201T000000 -u "$ED" --detach-sign -o "$out/ed.sig" "$out/data.txt"
g --faked-system-time 20240201T000000 -u "$ED" --detach-sign -a -o "$out/ed.asc" "$out/data.txt"

# A key the ROM does not have.
export GNUPGHOME=$work/other; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20240101T000000 --quick-gen-key 'Other <other@example.org>' ed25519 sign never
g --faked-system-time 20240201T000000 --detach-sign -a -o "$out/other.asc" "$out/data.txt"

# Revoked primary key: sign, then import its revocation certificate.
export GNUPGHOME=$work/revoked; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20240101T000000 --quick-gen-key 'Revoked <revoked@example.org>' ed25519 sign never
R=$(fpr revoked@example.org)
g --faked-system-time 20240201T000000 --detach-sign -a -o "$out/revoked.sig.asc" "$out/data.txt"
sed 's/^:-----/-----/' "$GNUPGHOME/openpgp-revocs.d/$R.rev" | g --faked-system-time 20240301T000000 --import
gpg --armor --export >"$out/revoked.asc"

# Revoked signing subkey.
export GNUPGHOME=$work/revsub; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20240101T000000 --quick-gen-key 'Revsub <revsub@example.org>' ed25519 cert never
R=$(fpr revsub@example.org)
g --faked-system-time 20240101T000000 --quick-add-key "$R" ed25519 sign never
g --faked-system-time 20240201T000000 --detach-sign -a -o "$out/revsub.sig.asc" "$out/data.txt"
printf 'key 1\nrevkey\ny\n0\n\ny\nsave\n' | g --faked-system-time 20240301T000000 --command-fd 0 --edit-key "$R"
gpg --armor --export >"$out/revsub.asc"

# Expired when it signed: sign on 2020-01-10, then a newer self-signature
# (dated 2020-01-02) makes the key expire on 2020-01-04.
export GNUPGHOME=$work/expired; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20200101T000000 --quick-gen-key 'Expired <expired@example.org>' ed25519 sign never
R=$(fpr expired@example.org)
g --faked-system-time 20200110T000000 --detach-sign -a -o "$out/expired.sig.asc" "$out/data.txt"
g --faked-system-time 20200102T000000 --quick-set-expire "$R" 2d
gpg --armor --export >"$out/expired.asc"

# Expired after it signed: valid until 2020-01-04, signed on 2020-01-03.
export GNUPGHOME=$work/expafter; mkdir -m 700 "$GNUPGHOME"
g --faked-system-time 20200101T000000 --quick-gen-key 'Expired After <expafter@example.org>' ed25519 sign 3d
g --faked-system-time 20200103T000000 --detach-sign -a -o "$out/expired-after.sig.asc" "$out/data.txt"
gpg --armor --export >"$out/expired-after.asc"
