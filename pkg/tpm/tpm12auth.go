package tpm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
)

// TPM 1.2 authorization sessions (TPM Main Part 1, section 13; Part 3,
// sections 18.1-18.2). An OIAP session proves knowledge of an entity's
// authorization secret per command; an OSAP session derives a shared secret
// bound to one entity and is needed for commands that set a new secret
// (encAuth, "ADIP").

const (
	et12KeyHandle = 0x0001
	et12Owner     = 0x0002
	et12Counter   = 0x000A

	kh12SRK   = 0x40000000
	kh12Owner = 0x40000001
)

// wellKnown is the TPM 1.2 well-known secret (20 zero bytes), the SRK and
// sealed-data authorization Heads' tpmtotp tools use when no password is given.
var wellKnown = make([]byte, 20)

// authDigest is TPM 1.2's authorization value for a passphrase: SHA-1 of it,
// as tpmtotp/libtpm (`-pwdo`, `-pwdd`) compute it; nil means well-known.
func authDigest(pass []byte) []byte {
	if pass == nil {
		return append([]byte(nil), wellKnown...)
	}
	s := sha1.Sum(pass)
	return s[:]
}

type session12 struct {
	handle    uint32
	nonceEven []byte
	// key is the HMAC key: the entity's usage secret (OIAP) or the OSAP
	// shared secret.
	key []byte
}

func nonce20() []byte {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

func (t *TPM) oiap(secret []byte) (*session12, error) {
	body, err := t.run12(newCmd12(tag12RqCommand, ord12OIAP).bytes())
	if err != nil {
		return nil, fmt.Errorf("TPM 1.2 OIAP: %w", err)
	}
	r := &reader12{b: body}
	h := r.u32()
	ne := r.take(20)
	if r.err != nil {
		return nil, r.err
	}
	return &session12{handle: h, nonceEven: append([]byte(nil), ne...), key: secret}, nil
}

func (t *TPM) osap(entityType uint16, entity uint32, secret []byte) (*session12, error) {
	nonceOddOSAP := nonce20()
	cmd := newCmd12(tag12RqCommand, ord12OSAP).u16(entityType).u32(entity).raw(nonceOddOSAP)
	body, err := t.run12(cmd.bytes())
	if err != nil {
		return nil, fmt.Errorf("TPM 1.2 OSAP: %w", err)
	}
	r := &reader12{b: body}
	h := r.u32()
	ne := r.take(20)
	neOSAP := r.take(20)
	if r.err != nil {
		return nil, r.err
	}
	mac := hmac.New(sha1.New, secret)
	mac.Write(neOSAP)
	mac.Write(nonceOddOSAP)
	return &session12{handle: h, nonceEven: append([]byte(nil), ne...), key: mac.Sum(nil)}, nil
}

// encAuth encrypts a new authorization secret for an OSAP-authorized command
// (ADIP): XOR with SHA-1(sharedSecret || nonceEven).
func (s *session12) encAuth(newAuth []byte) []byte {
	h := sha1.New()
	h.Write(s.key)
	h.Write(s.nonceEven)
	pad := h.Sum(nil)
	out := make([]byte, 20)
	for i := range out {
		out[i] = pad[i] ^ newAuth[i]
	}
	return out
}

// authed12 is a command with one or two authorization sessions.
type authed12 struct {
	ord      uint32
	handles  []uint32
	params   []byte // parameters after the handles (the "1S" inputs)
	sessions []*session12
	nonceOdd [][]byte
}

func (c *authed12) encode() []byte {
	tag := uint16(tag12RqAuth1)
	if len(c.sessions) == 2 {
		tag = tag12RqAuth2
	}
	b := newCmd12(tag, c.ord)
	for _, h := range c.handles {
		b.u32(h)
	}
	b.raw(c.params)
	digest := sha1.New()
	binary.Write(digest, binary.BigEndian, c.ord)
	digest.Write(c.params)
	pd := digest.Sum(nil)
	c.nonceOdd = nil
	for _, s := range c.sessions {
		no := nonce20()
		c.nonceOdd = append(c.nonceOdd, no)
		mac := hmac.New(sha1.New, s.key)
		mac.Write(pd)
		mac.Write(s.nonceEven)
		mac.Write(no)
		mac.Write([]byte{0}) // continueAuthSession = FALSE: the TPM closes the session
		b.u32(s.handle).raw(no).u8(0).raw(mac.Sum(nil))
	}
	return b.bytes()
}

// runAuthed sends c and verifies the TPM's response authorization, which
// proves the response came from a TPM that knows the secret. nHandles is the
// number of handles the response returns before its parameters (excluded
// from the response digest, as in the command).
func (t *TPM) runAuthed(c *authed12, outHandles int) ([]byte, error) {
	cmd := c.encode()
	rsp, err := t.t.Send(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransport, err)
	}
	if len(rsp) < 10 {
		return nil, fmt.Errorf("TPM 1.2 command 0x%x: short response", c.ord)
	}
	if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 {
		return nil, &Error12{Ordinal: c.ord, Code: rc}
	}
	trailer := 41 * len(c.sessions)
	if len(rsp) < 10+trailer+4*outHandles {
		return nil, fmt.Errorf("TPM 1.2 command 0x%x: response too short for its authorization", c.ord)
	}
	body := rsp[10 : len(rsp)-trailer]
	out := body[4*outHandles:]
	digest := sha1.New()
	digest.Write(rsp[6:10]) // return code
	binary.Write(digest, binary.BigEndian, c.ord)
	digest.Write(out)
	pd := digest.Sum(nil)
	auths := rsp[len(rsp)-trailer:]
	for i, s := range c.sessions {
		a := auths[41*i : 41*(i+1)]
		nonceEven, cont, got := a[:20], a[20:21], a[21:41]
		mac := hmac.New(sha1.New, s.key)
		mac.Write(pd)
		mac.Write(nonceEven)
		mac.Write(c.nonceOdd[i])
		mac.Write(cont)
		if !hmac.Equal(mac.Sum(nil), got) {
			return nil, fmt.Errorf("TPM 1.2 command 0x%x: response authorization %d does not verify: %w", c.ord, i+1, errResponseAuth)
		}
	}
	return body, nil
}

var errResponseAuth = errors.New("the reply was not produced by a TPM holding the secret (tampered bus or wrong secret)")
