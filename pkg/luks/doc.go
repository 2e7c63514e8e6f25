// Package luks manages LUKS1 and LUKS2 keyslots in pure Go, compatible with
// cryptsetup 2.6: it lists slots, recovers the volume key from a passphrase
// or key file, adds and removes keyslots, and returns the header bytes
// Heads measures. It replaces the cryptsetup calls of Heads'
// kexec-seal-key.sh (luksAddKey, luksKillSlot, luksHeaderBackup) and the
// DRK test of kexec-insert-key.sh (open --test-passphrase).
//
// Typical Disk Unlock Key setup (Heads' kexec-seal-key.sh):
//
//	d, _ := luks.Open("/dev/sda2", luks.Options{})
//	u, err := d.Unlock(drk)            // ErrWrongPassphrase, *KDFTooExpensiveError
//	plan, err := d.PlanDUK(u.Slot())   // which slots to ask about
//	for _, q := range plan.Ask {       // the UI asks; on "yes":
//		err = u.RemoveSlot(q.Slot)
//	}
//	err = u.AddKey(duk, plan.Slot, luks.AddOptions{})
//	u.Close()                          // wipes the volume key
//	hdr, _ := d.HeaderBackup()         // hash for PCR 6 / kexec_lukshdr_hash.txt
//
// Why not github.com/anatol/luks.go: it reads headers and unlocks, but it
// cannot write, keeps the volume key in an unexported field, never reads the
// LUKS2 secondary header copy or compares seqids, runs Argon2 with whatever
// memory a header asks for, supports only XTS keyslots, and panics on a
// LUKS2 JSON area without a NUL byte. goheads needs all of those, so this
// package implements the formats itself, following cryptsetup's sources
// (lib/luks1/keymanage.c, af.c, lib/luks2/luks2_disk_metadata.c,
// luks2_keyslot_luks2.c, luks2_json_metadata.c). The tests use luks.go as
// an independent second reader of what this package writes. Mapping the
// volume with dm-crypt is not done here (github.com/anatol/devmapper.go can
// load a crypt table with the key from VolumeKey).
//
// Formats written "exactly as cryptsetup does": a LUKS1 header is the
// 1024-byte struct with only the target slot changed; LUKS2 metadata is
// re-serialized the way json-c prints it (key order kept, compact), so
// goheads' JSON for a new slot is byte-identical to cryptsetup luksAddKey's
// apart from the random salt, and both copies get seqid+1 and fresh
// checksums. Crash safety and the write order are explained in write.go;
// KDF choices at DefaultKDF and DefaultMaxKDFMemoryKiB.
//
// Secrets: passphrases are used as given and never copied into strings; the
// volume key, derived keys and decrypted key material are overwritten when
// no longer needed (Unlocked.Close for the volume key). Go cannot reach the
// copies inside crypto/aes key schedules, HMAC pads or Argon2's memory;
// those die with the process, which in goheads is short-lived.
package luks
