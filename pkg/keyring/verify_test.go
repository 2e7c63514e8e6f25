package keyring

import (
	"bytes"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func mustLoad(t testing.TB, name string) *Keyring {
	t.Helper()
	kr, err := Load(readTestdata(t, name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return kr
}

// TestVerifyFixtures checks signatures made by gpg 2.2 (testdata/gen.sh)
// against keys listed by gpg (keys.colons).
func TestVerifyFixtures(t *testing.T) {
	keys := parseColons(t, string(readTestdata(t, "keys.colons")))
	rsa, ed, edSign := keys[0].fpr, keys[1].fpr, keys[1].subs[0].fpr
	data := readTestdata(t, "data.txt")
	for _, ringName := range []string{"pubring.kbx", "pub.gpg", "pub.asc"} {
		kr := mustLoad(t, ringName)
		for _, tc := range []struct {
			sig, fpr, signing string
			subkey            bool
			algo              string
		}{
			{"rsa.sig", rsa, rsa, false, "rsa3072"},
			{"rsa.asc", rsa, rsa, false, "rsa3072"},
			{"ed.sig", ed, edSign, true, "ed25519"},
			{"ed.asc", ed, edSign, true, "ed25519"},
		} {
			s, err := kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(readTestdata(t, tc.sig)), nil)
			if err != nil {
				t.Errorf("%s with %s: %v", tc.sig, ringName, err)
				continue
			}
			if s.Fingerprint != tc.fpr || s.SigningKey != tc.signing || s.Subkey != tc.subkey || s.Algorithm != tc.algo || s.Hash == "" {
				t.Errorf("%s with %s: signer %+v, want key %s signing %s subkey %v %s", tc.sig, ringName, s, tc.fpr, tc.signing, tc.subkey, tc.algo)
			}
			if want := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC); !s.Created.Equal(want) {
				t.Errorf("%s: created %v, want %v", tc.sig, s.Created, want)
			}
			if !strings.Contains(s.UserID, "@example.org") {
				t.Errorf("%s: user ID %q", tc.sig, s.UserID)
			}

			// One byte changed in the data: BAD, naming the key.
			bad := append([]byte(nil), data...)
			bad[0] ^= 1
			_, err = kr.VerifyDetached(bytes.NewReader(bad), bytes.NewReader(readTestdata(t, tc.sig)), nil)
			var se *SignatureError
			if !errors.Is(err, ErrBadSignature) || !errors.As(err, &se) || se.Fingerprint != tc.fpr {
				t.Errorf("%s over changed data: %v, want ErrBadSignature naming %s", tc.sig, err, tc.fpr)
			}
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	data := readTestdata(t, "data.txt")
	rom := mustLoad(t, "pubring.kbx")
	armoredPub := readTestdata(t, "pub.asc")
	edSig := readTestdata(t, "ed.sig")
	for _, tc := range []struct {
		name    string
		ring    *Keyring
		sig     []byte
		want    error
		mention string // text the error must contain (names the key or the reason)
	}{
		{"unknown key", rom, readTestdata(t, "other.asc"), ErrUnknownKey, "key"},
		{"empty keyring", &Keyring{}, readTestdata(t, "ed.asc"), ErrUnknownKey, "3279D361B1A6CC7D"},
		{"garbage", rom, []byte("this is not a signature\n"), ErrMalformedSignature, "no valid OpenPGP data"},
		{"empty", rom, nil, ErrMalformedSignature, "no valid OpenPGP data"},
		{"truncated binary", rom, edSig[:len(edSig)-10], ErrMalformedSignature, ""},
		{"truncated armour", rom, readTestdata(t, "ed.asc")[:100], ErrMalformedSignature, ""},
		{"public key armour", rom, armoredPub, ErrMalformedSignature, "PGP PUBLIC KEY BLOCK"},
		{"key packets", rom, readTestdata(t, "pub.gpg"), ErrMalformedSignature, "not a detached signature"},
		{"revoked key", mustLoad(t, "revoked.asc"), readTestdata(t, "revoked.sig.asc"), ErrRevokedKey, "revoked"},
		{"revoked subkey", mustLoad(t, "revsub.asc"), readTestdata(t, "revsub.sig.asc"), ErrRevokedKey, "signing subkey"},
		{"expired at signing", mustLoad(t, "expired.asc"), readTestdata(t, "expired.sig.asc"), ErrExpiredKey, "expired 2020-01-04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.ring.VerifyDetached(bytes.NewReader(data), bytes.NewReader(tc.sig), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got signer %+v, err %v; want %v", s, err, tc.want)
			}
			var se *SignatureError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SignatureError", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			for _, other := range []error{ErrMalformedSignature, ErrBadSignature, ErrUnknownKey, ErrRevokedKey, ErrExpiredKey, ErrExpiredSignature, ErrUnusableKey} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
		})
	}
}

// A key that expired after it signed is accepted, with a note.
func TestVerifyExpiredAfterSigning(t *testing.T) {
	kr := mustLoad(t, "expired-after.asc")
	s, err := kr.VerifyDetached(bytes.NewReader(readTestdata(t, "data.txt")), bytes.NewReader(readTestdata(t, "expired-after.sig.asc")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "expired since") {
		t.Errorf("notes = %q, want one saying the key expired since", s.Notes)
	}
	// Judged at a time before the expiry, no note.
	s, err = kr.VerifyDetached(bytes.NewReader(readTestdata(t, "data.txt")), bytes.NewReader(readTestdata(t, "expired-after.sig.asc")),
		&VerifyOptions{Now: time.Date(2020, 1, 3, 12, 0, 0, 0, time.UTC)})
	if err != nil || len(s.Notes) != 0 {
		t.Errorf("before expiry: notes %q, err %v", s.Notes, err)
	}
}

// TestGoCryptoBehaviour records what go-crypto's own CheckDetachedSignature
// does with the policy cases, to make explicit why VerifyDetached applies
// its own policy instead: go-crypto judges expiry at "now" (refusing a key
// that expired after signing, which gpg and goheads accept) and its
// revocation check is time-dependent. If a go-crypto upgrade changes any of
// this, the test says so; VerifyDetached does not depend on it.
func TestGoCryptoBehaviour(t *testing.T) {
	data := readTestdata(t, "data.txt")
	for _, tc := range []struct {
		ring, sig string
		goCrypto  error // what go-crypto v1.5.2 returns at the real time
		goheads   error // what VerifyDetached returns
	}{
		{"revoked.asc", "revoked.sig.asc", pgperrors.ErrKeyRevoked, ErrRevokedKey},
		{"revsub.asc", "revsub.sig.asc", pgperrors.ErrKeyRevoked, ErrRevokedKey},
		{"expired.asc", "expired.sig.asc", pgperrors.ErrKeyExpired, ErrExpiredKey},
		{"expired-after.asc", "expired-after.sig.asc", pgperrors.ErrKeyExpired, nil},
	} {
		kr := mustLoad(t, tc.ring)
		_, gcErr := openpgp.CheckArmoredDetachedSignature(kr.Entities(), bytes.NewReader(data), bytes.NewReader(readTestdata(t, tc.sig)), nil)
		if !errors.Is(gcErr, tc.goCrypto) {
			t.Errorf("%s: go-crypto returned %v, this test recorded %v", tc.sig, gcErr, tc.goCrypto)
		}
		_, err := kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(readTestdata(t, tc.sig)), nil)
		if !errors.Is(err, tc.goheads) || (tc.goheads == nil) != (err == nil) {
			t.Errorf("%s: VerifyDetached returned %v, want %v", tc.sig, err, tc.goheads)
		}
	}
	// At the signing time, go-crypto (config.Time) accepts the signature of a
	// subkey that was revoked later (2024-03-01) for a reason other than
	// compromise: goheads refuses it.
	kr := mustLoad(t, "revsub.asc")
	sigTime := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	_, gcErr := openpgp.CheckArmoredDetachedSignature(kr.Entities(), bytes.NewReader(data), bytes.NewReader(readTestdata(t, "revsub.sig.asc")),
		&packet.Config{Time: func() time.Time { return sigTime }})
	if gcErr != nil {
		t.Errorf("go-crypto at signing time: %v (recorded: accepted)", gcErr)
	}
}

func FuzzVerifyDetached(f *testing.F) {
	for _, n := range []string{"ed.sig", "ed.asc", "rsa.sig", "rsa.asc", "other.asc"} {
		f.Add(readTestdata(f, n))
	}
	kr := mustLoad(f, "pubring.kbx")
	data := readTestdata(f, "data.txt")
	f.Fuzz(func(t *testing.T, sig []byte) {
		s, err := kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(sig), nil)
		if err == nil && s == nil {
			t.Fatal("nil signer without error")
		}
		if err != nil {
			var se *SignatureError
			if !errors.As(err, &se) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
		}
	})
}

// A signing subkey whose binding carries no key flags was never checked for
// a cross-signature by go-crypto; VerifyDetached refuses it (gpg also
// requires signing subkeys to be cross-certified).
func TestSubkeyWithoutFlagsRefused(t *testing.T) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity("No Flags", "", "noflags@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddSigningSubkey(cfg); err != nil {
		t.Fatal(err)
	}
	sk := &e.Subkeys[len(e.Subkeys)-1] // [0] is the encryption subkey NewEntity makes
	// Re-bind the subkey with a binding signature that has no flags.
	bind := &packet.Signature{Version: 4, SigType: packet.SigTypeSubkeyBinding, PubKeyAlgo: e.PrimaryKey.PubKeyAlgo,
		Hash: crypto.SHA256, CreationTime: sk.Sig.CreationTime, IssuerKeyId: &e.PrimaryKey.KeyId}
	if err := bind.SignKey(sk.PublicKey, e.PrivateKey, cfg); err != nil {
		t.Fatal(err)
	}
	sk.Sig = bind
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	kr, err := Load(pub.Bytes())
	if err != nil || kr.Len() != 1 {
		t.Fatalf("load: %d keys, %v", kr.Len(), err)
	}
	data := []byte("signed by the subkey\n")
	sig := &packet.Signature{Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: sk.PublicKey.PubKeyAlgo,
		Hash: crypto.SHA256, CreationTime: time.Now(), IssuerKeyId: &sk.PublicKey.KeyId}
	h := crypto.SHA256.New()
	h.Write(data)
	if err := sig.Sign(h, sk.PrivateKey, cfg); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if err := sig.Serialize(&raw); err != nil {
		t.Fatal(err)
	}
	_, err = kr.VerifyDetached(bytes.NewReader(data), &raw, nil)
	if !errors.Is(err, ErrUnusableKey) || !strings.Contains(err.Error(), "no key flags") {
		t.Fatalf("subkey without flags: %v, want ErrUnusableKey", err)
	}
}
