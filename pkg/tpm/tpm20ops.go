package tpm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Heads' TPM 2.0 handles.
const (
	// PrimaryHandle is the persistent ECC storage primary Heads creates on
	// TPM reset; sealed objects live under it.
	PrimaryHandle = 0x81000000
)

// sealedHandle is where a secret with Heads index idx is persisted
// (tpmr: printf "0x81%6s" index): 0x81004d47 for TOTP, 0x81000003 for the DUK.
func sealedHandle(idx uint32) tpm2.TPMHandle { return tpm2.TPMHandle(PrimaryHandle | idx) }

// primary reads the persistent primary's name and public area.
func (t *TPM) primary() (tpm2.TPM2BName, *tpm2.TPMTPublic, error) {
	rsp, err := tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(PrimaryHandle)}.Execute(t.t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return tpm2.TPM2BName{}, nil, fmt.Errorf("no primary key at 0x%08x (the TPM was cleared or never reset by Heads or goheads): %w", PrimaryHandle, ErrNotProvisioned)
		}
		return tpm2.TPM2BName{}, nil, wrap20("read primary key", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return tpm2.TPM2BName{}, nil, fmt.Errorf("read primary key: %w", err)
	}
	return rsp.Name, pub, nil
}

// encSession is a one-use HMAC session salted with the primary key, used for
// parameter encryption so secrets do not cross the TPM bus in clear (Heads'
// enc.ctx/dec.ctx sessions).
func encSession(primaryPub *tpm2.TPMTPublic, dir tpm2.AuthOption) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16,
		tpm2.Salted(tpm2.TPMHandle(PrimaryHandle), *primaryPub), dir)
}

// selection20 is the SHA-256 PCR selection for idx.
func selection20(idx []int) tpm2.TPMLPCRSelection {
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(toUint(idx)...),
	}}}
}

// policyDigest20 computes, offline, the policy Heads' tpm2_seal builds with
// a trial session: PolicyPCR over the SHA-256 values (in PCR order), then
// PolicyAuthValue when a passphrase protects the object. PolicyPassword
// gives the same digest, so objects Heads sealed either way unseal here.
func policyDigest20(values map[int][]byte, withAuth bool) ([]byte, error) {
	idx := sortedKeys(values)
	h := sha256.New()
	for _, i := range idx {
		if len(values[i]) != sha256.Size {
			return nil, fmt.Errorf("PCR %d value is %d bytes, want 32", i, len(values[i]))
		}
		h.Write(values[i])
	}
	pc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	if err := (tpm2.PolicyPCR{Pcrs: selection20(idx), PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}}).Update(pc); err != nil {
		return nil, err
	}
	if withAuth {
		if err := (tpm2.PolicyAuthValue{}).Update(pc); err != nil {
			return nil, err
		}
	}
	return pc.Hash().Digest, nil
}

func sortedKeys(m map[int][]byte) []int {
	k := make([]int, 0, len(m))
	for i := range m {
		k = append(k, i)
	}
	sort.Ints(k)
	return k
}

// maxAuth20 is the largest authValue a SHA-256 object accepts.
const maxAuth20 = sha256.Size

func (t *TPM) seal20(idx uint32, secret []byte, values map[int][]byte, pass, ownerAuth []byte) error {
	if len(pass) > maxAuth20 {
		return fmt.Errorf("passphrase is %d bytes; a TPM 2.0 object passphrase is at most %d (Heads passes it unhashed)", len(pass), maxAuth20)
	}
	pname, ppub, err := t.primary()
	if err != nil {
		return err
	}
	policy, err := policyDigest20(values, len(pass) > 0)
	if err != nil {
		return err
	}
	tmpl := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		// Heads: fixedtpm|fixedparent|adminwithpolicy. No userWithAuth: the
		// passphrase alone never unseals, the PCR policy is always required.
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, AdminWithPolicy: true},
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
	}
	create, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(PrimaryHandle), Name: pname,
			Auth: encSession(ppub, tpm2.AESEncryption(128, tpm2.EncryptIn))},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			UserAuth: tpm2.TPM2BAuth{Buffer: pass},
			Data:     tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
		}},
		InPublic: tpm2.New2B(tmpl),
	}.Execute(t.t)
	if err != nil {
		return wrap20("create sealed object", err)
	}
	load, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(PrimaryHandle), Name: pname, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    create.OutPrivate,
		InPublic:     create.OutPublic,
	}.Execute(t.t)
	if err != nil {
		return wrap20("load sealed object", err)
	}
	defer tpm2.FlushContext{FlushHandle: load.ObjectHandle}.Execute(t.t)
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)}
	h := sealedHandle(idx)
	// Replace what is there (Heads evicts first, ignoring errors).
	if old, err := (tpm2.ReadPublic{ObjectHandle: h}).Execute(t.t); err == nil {
		if _, err := (tpm2.EvictControl{Auth: owner, ObjectHandle: &tpm2.NamedHandle{Handle: h, Name: old.Name}, PersistentHandle: h}).Execute(t.t); err != nil {
			return wrap20(fmt.Sprintf("remove the old sealed secret at 0x%08x", uint32(h)), err)
		}
	}
	if _, err := (tpm2.EvictControl{Auth: owner,
		ObjectHandle:     &tpm2.NamedHandle{Handle: load.ObjectHandle, Name: load.Name},
		PersistentHandle: h}).Execute(t.t); err != nil {
		return wrap20(fmt.Sprintf("persist the sealed secret at 0x%08x", uint32(h)), err)
	}
	return nil
}

func (t *TPM) unseal20(idx uint32, pcrs []int, pass []byte) ([]byte, error) {
	h := sealedHandle(idx)
	obj, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t.t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("no sealed secret at 0x%08x: %w", uint32(h), ErrNotProvisioned)
		}
		return nil, wrap20("read sealed object", err)
	}
	_, ppub, err := t.primary()
	if err != nil {
		return nil, err
	}
	// One session does the policy and the response encryption (salted
	// with the primary key, so the secret does not cross the bus in
	// clear). It is started just before the Unseal and not continued, so
	// the TPM flushes it itself: 5 commands for an unseal, no
	// FlushContext (which through the kernel's resource manager costs a
	// ContextLoad as well). On a failed Unseal go-tpm flushes it.
	opts := []tpm2.AuthOption{tpm2.Salted(tpm2.TPMHandle(PrimaryHandle), *ppub), tpm2.AESEncryption(128, tpm2.EncryptOut)}
	if len(pass) > 0 {
		opts = append(opts, tpm2.Auth(pass))
	}
	var policyErr error
	pol := tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tp transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		if _, err := (tpm2.PolicyPCR{PolicySession: h, Pcrs: selection20(pcrs)}).Execute(tp); err != nil {
			policyErr = wrap20("policy PCR", err)
			// Nothing flushes a session whose policy failed: do it here.
			tpm2.FlushContext{FlushHandle: h}.Execute(tp)
			return policyErr
		}
		if len(pass) > 0 {
			if _, err := (tpm2.PolicyAuthValue{PolicySession: h}).Execute(tp); err != nil {
				policyErr = wrap20("policy auth value", err)
				tpm2.FlushContext{FlushHandle: h}.Execute(tp)
				return policyErr
			}
		}
		return nil
	}, opts...)
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: h, Name: obj.Name, Auth: pol}}.Execute(t.t)
	if policyErr != nil {
		return nil, policyErr
	}
	if err != nil {
		return nil, t.authError20("unseal", err)
	}
	return rsp.OutData.Buffer, nil
}

// authError20 turns a lockout into a LockoutError with the wait time.
func (t *TPM) authError20(op string, err error) error {
	e := wrap20(op, err)
	if !errors.Is(e, ErrLockout) {
		return e
	}
	return &LockoutError{Wait: t.lockoutWait20()}
}

// lockoutWait20 estimates how long until the TPM forgives one failure.
func (t *TPM) lockoutWait20() time.Duration {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 3}.Execute(t.t)
	if err != nil {
		return 0
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return 0
	}
	for _, p := range props.TPMProperty {
		if p.Property == tpm2.TPMPTLockoutInterval {
			return time.Duration(p.Value) * time.Second
		}
	}
	return 0
}

// nvPublic20 reads an NV index's public area (its Name changes once written).
func (t *TPM) nvPublic20(index uint32) (*tpm2.NVReadPublicResponse, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(index)}.Execute(t.t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("NV index 0x%08x does not exist: %w", index, ErrNotProvisioned)
		}
		return nil, wrap20(fmt.Sprintf("read NV index 0x%08x", index), err)
	}
	return rsp, nil
}

func (t *TPM) nvRead20(index uint32, size int) ([]byte, error) {
	pub, err := t.nvPublic20(index)
	if err != nil {
		return nil, err
	}
	nh := tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: pub.NVName}
	var out []byte
	for off := 0; off < size; {
		n := min(512, size-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: nh.Handle, Name: nh.Name, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    nh, Size: uint16(n), Offset: uint16(off),
		}.Execute(t.t)
		if err != nil {
			return nil, wrap20(fmt.Sprintf("read NV index 0x%08x", index), err)
		}
		out = append(out, rsp.Data.Buffer...)
		off += n
	}
	return out, nil
}

// nvDefineWrite20 (re)defines an owner-written, freely readable NV index and
// writes data to it.
func (t *TPM) nvDefineWrite20(index uint32, data, ownerAuth []byte) error {
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)}
	if pub, err := t.nvPublic20(index); err == nil {
		if _, err := (tpm2.NVUndefineSpace{AuthHandle: owner, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: pub.NVName}}).Execute(t.t); err != nil {
			return wrap20(fmt.Sprintf("undefine NV index 0x%08x", index), err)
		}
	}
	pub := tpm2.TPMSNVPublic{
		NVIndex: tpm2.TPMHandle(index), NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary},
		DataSize:   uint16(len(data)),
	}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: owner, PublicInfo: tpm2.New2B(pub)}).Execute(t.t); err != nil {
		return wrap20(fmt.Sprintf("define NV index 0x%08x", index), err)
	}
	np, err := t.nvPublic20(index)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); {
		n := min(512, len(data)-off)
		if _, err := (tpm2.NVWrite{AuthHandle: owner,
			NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: np.NVName},
			Data:    tpm2.TPM2BMaxNVBuffer{Buffer: data[off : off+n]}, Offset: uint16(off)}).Execute(t.t); err != nil {
			return wrap20(fmt.Sprintf("write NV index 0x%08x", index), err)
		}
		off += n
		if off < len(data) {
			if np, err = t.nvPublic20(index); err != nil { // the Name changes after the first write
				return err
			}
		}
	}
	return nil
}
