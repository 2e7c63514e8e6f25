package tpm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Reset clears the TPM and takes ownership with a new owner passphrase, as
// Heads' "Reset the TPM" does. Everything sealed before is gone.
//
// TPM 2.0: ClearControl + Clear through the platform hierarchy, owner and
// endorsement auth set to the passphrase, a persistent ECC primary at
// 0x81000000, dictionary-attack parameters (10 tries, 1 failure forgiven per
// hour, lockout recovery needs a reset) and a random lockout auth.
// TPM 1.2: physical presence, force clear, take ownership (SRK well-known).
func (t *TPM) Reset(ownerPass []byte) error {
	if t.fam == Family12 {
		return t.reset12(ownerPass)
	}
	if len(ownerPass) > maxAuth20 {
		return fmt.Errorf("reset: owner passphrase is %d bytes; at most %d", len(ownerPass), maxAuth20)
	}
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	// TPM2_ClearControl(disable=NO). Some TPMs (CR50) lack it; a set
	// disableClear then shows up as Clear's error.
	t.runPW20(uint32(tpm2.TPMCCClearControl), tpm2.TPMRHPlatform, nil, []byte{0})
	if _, err := (tpm2.Clear{AuthHandle: platform}).Execute(t.t); err != nil {
		return wrap20("reset: clear through the platform hierarchy (firmware may have locked it)", err)
	}
	for _, h := range []tpm2.TPMHandle{tpm2.TPMRHOwner, tpm2.TPMRHEndorsement} {
		if _, err := (tpm2.HierarchyChangeAuth{
			AuthHandle: tpm2.AuthHandle{Handle: h, Auth: tpm2.PasswordAuth(nil)},
			NewAuth:    tpm2.TPM2BAuth{Buffer: ownerPass},
		}).Execute(t.t); err != nil {
			return wrap20("reset: set hierarchy passphrase", err)
		}
	}
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerPass)}
	prim, err := tpm2.CreatePrimary{PrimaryHandle: owner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(t.t)
	if err != nil {
		return wrap20("reset: create primary key", err)
	}
	defer tpm2.FlushContext{FlushHandle: prim.ObjectHandle}.Execute(t.t)
	if _, err := (tpm2.EvictControl{Auth: owner,
		ObjectHandle:     &tpm2.NamedHandle{Handle: prim.ObjectHandle, Name: prim.Name},
		PersistentHandle: tpm2.TPMHandle(PrimaryHandle)}).Execute(t.t); err != nil {
		return wrap20("reset: persist primary key", err)
	}
	lockout := tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}
	// TPM2_DictionaryAttackParameters: maxTries 10, recoveryTime 3600 s,
	// lockoutRecovery 0 (Heads' values; go-tpm has no struct for it).
	da := binary.BigEndian.AppendUint32(nil, 10)
	da = binary.BigEndian.AppendUint32(da, 3600)
	da = binary.BigEndian.AppendUint32(da, 0)
	if err := t.runPW20(uint32(tpm2.TPMCCDictionaryAttackParameters), tpm2.TPMRHLockout, nil, da); err != nil {
		return wrap20("reset: set dictionary-attack parameters", err)
	}
	// A random lockout passphrase nobody knows: lifting a lockout takes a
	// TPM reset, never a guessable secret.
	la := make([]byte, 32)
	if _, err := rand.Read(la); err != nil {
		return err
	}
	defer wipe(la)
	if _, err := (tpm2.HierarchyChangeAuth{AuthHandle: lockout, NewAuth: tpm2.TPM2BAuth{Buffer: la}}).Execute(t.t); err != nil {
		return wrap20("reset: set lockout passphrase", err)
	}
	return nil
}

// Provisioned reports whether the TPM is set up for sealing: TPM 2.0 has
// the persistent primary; TPM 1.2 has an owner (an SRK).
func (t *TPM) Provisioned() error {
	if t.fam == Family20 {
		_, _, err := t.primary()
		return err
	}
	// TPM_OwnerReadInternalPub would need owner auth; a seal attempt with
	// the well-known SRK auth is the cheapest test that needs none.
	_, err := t.seal12([]byte{0}, map[int][]byte{0: make([]byte, 20)}, nil)
	if errors.Is(err, ErrNotProvisioned) {
		return fmt.Errorf("TPM 1.2 has no owner: %w", ErrNotProvisioned)
	}
	return err
}

// Finalize prepares the TPM for handing over to the OS (Heads'
// kexec_finalize): on TPM 2.0 the platform hierarchy gets a random
// passphrase, so the OS cannot clear the TPM until the next boot. TPM 1.2
// has nothing to do.
func (t *TPM) Finalize() error {
	if t.fam != Family20 {
		return nil
	}
	p := make([]byte, 32)
	if _, err := rand.Read(p); err != nil {
		return err
	}
	defer wipe(p)
	_, err := tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: p},
	}.Execute(t.t)
	return wrap20("lock the platform hierarchy", err)
}

// Shutdown tells a TPM 2.0 that power is going away (TPM2_Shutdown(CLEAR)),
// so the next boot is not counted as a non-orderly shutdown, which would
// cost a dictionary-attack failure.
func (t *TPM) Shutdown() error {
	if t.fam != Family20 {
		return nil
	}
	_, err := tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}.Execute(t.t)
	return wrap20("shutdown", err)
}

func (t *TPM) evict20(idx uint32, ownerAuth []byte) error {
	h := sealedHandle(idx)
	obj, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t.t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil // nothing to remove
		}
		return wrap20("read sealed object", err)
	}
	_, err = tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
		ObjectHandle:     &tpm2.NamedHandle{Handle: h, Name: obj.Name},
		PersistentHandle: h,
	}.Execute(t.t)
	return t.authError20(fmt.Sprintf("remove sealed secret 0x%08x", uint32(h)), err)
}
