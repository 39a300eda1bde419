package gssapi

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// krb5OID is the DER encoding of the Kerberos V5 mechanism OID 1.2.840.113554.1.2.2.
var krb5OID = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}

// Token IDs of RFC 4121 section 4.1 and 4.2.6.2.
var (
	tokAPReq   = [2]byte{0x01, 0x00}
	tokAPRep   = [2]byte{0x02, 0x00}
	tokKRBErr  = [2]byte{0x03, 0x00}
	tokWrapCFX = [2]byte{0x05, 0x04}
)

// GSS context flags carried in the 0x8003 authenticator checksum (RFC 4121 4.1.1.1).
const (
	flagDeleg    = 0x01
	flagMutual   = 0x02
	flagReplay   = 0x04
	flagSequence = 0x08
	flagConf     = 0x10
	flagInteg    = 0x20
)

// Wrap token flags (RFC 4121 4.2.2).
const (
	wrapSentByAcceptor = 0x01
	wrapSealed         = 0x02
	wrapAcceptorSubkey = 0x04
)

// SASL GSSAPI security layers (RFC 4752 3.3).
const (
	layerNone = 0x01
)

// maxTokenLen bounds any token this package accepts. MIT tickets with a PAC can be
// large, but 64 KiB is far above anything seen (a plain AP-REQ is ~750 bytes).
const maxTokenLen = 64 << 10

// frameToken builds an RFC 2743 3.1 InitialContextToken-style framing:
// 0x60 len OID tokID inner (RFC 4121 4.1 uses it for AP-REQ, AP-REP, KRB-ERROR).
func frameToken(tokID [2]byte, inner []byte) []byte {
	body := make([]byte, 0, len(krb5OID)+2+len(inner))
	body = append(body, krb5OID...)
	body = append(body, tokID[:]...)
	body = append(body, inner...)
	out := []byte{0x60}
	out = appendDERLength(out, len(body))
	return append(out, body...)
}

func appendDERLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x82, byte(n>>8), byte(n))
	default:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

// parseToken undoes frameToken, validating every length. It returns the token ID
// and the Kerberos message after it.
func parseToken(b []byte) (tokID [2]byte, inner []byte, err error) {
	if len(b) > maxTokenLen {
		return tokID, nil, errorf(ErrMalformed, "token of %d bytes exceeds %d", len(b), maxTokenLen)
	}
	if len(b) < 2 || b[0] != 0x60 {
		return tokID, nil, errorf(ErrMalformed, "not a GSS-API initial context token")
	}
	l, hdr := int(b[1]), 2
	if l >= 0x80 {
		n := l & 0x7f
		if n < 1 || n > 3 || len(b) < 2+n {
			return tokID, nil, errorf(ErrMalformed, "bad token length encoding")
		}
		l = 0
		for _, c := range b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		hdr += n
	}
	if l != len(b)-hdr {
		return tokID, nil, errorf(ErrMalformed, "token length %d does not match %d bytes present", l, len(b)-hdr)
	}
	body := b[hdr:]
	if len(body) < len(krb5OID)+2 {
		return tokID, nil, errorf(ErrMalformed, "token truncated")
	}
	if !bytes.Equal(body[:len(krb5OID)], krb5OID) {
		return tokID, nil, errorf(ErrMalformed, "mechanism is not Kerberos V5")
	}
	copy(tokID[:], body[len(krb5OID):])
	return tokID, body[len(krb5OID)+2:], nil
}

// checkDER checks that b is exactly one DER element with the given identifier
// octet: gokrb5's ASN.1 decoder tolerates an outer length that overshoots the data.
func checkDER(b []byte, tag byte) error {
	if len(b) < 2 || b[0] != tag {
		return errorf(ErrMalformed, "expected ASN.1 tag %#02x", tag)
	}
	l, hdr := int(b[1]), 2
	if l >= 0x80 {
		n := l & 0x7f
		if n < 1 || n > 3 || len(b) < 2+n {
			return errorf(ErrMalformed, "bad ASN.1 length encoding")
		}
		l = 0
		for _, c := range b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		hdr += n
	}
	if l != len(b)-hdr {
		return errorf(ErrMalformed, "ASN.1 length %d does not match %d bytes present", l, len(b)-hdr)
	}
	return nil
}

// aesEtype returns the etype of an AES context key, validating its length. Other
// enctypes are refused: RFC 4121 tokens are only defined here for AES (the RC4
// family uses RFC 4757 tokens, which this package does not implement).
func aesEtype(key types.EncryptionKey) (etype.EType, error) {
	switch key.KeyType {
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96,
		etypeID.AES128_CTS_HMAC_SHA256_128, etypeID.AES256_CTS_HMAC_SHA384_192:
	default:
		return nil, errorf(ErrUnsupported, "enctype %d (only AES is supported)", key.KeyType)
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, errorf(ErrUnsupported, "enctype %d: %v", key.KeyType, err)
	}
	if len(key.KeyValue) != et.GetKeyByteSize() {
		return nil, errorf(ErrMalformed, "key of %d bytes for enctype %d", len(key.KeyValue), key.KeyType)
	}
	return et, nil
}

// decrypt decrypts ed with key after checking everything gokrb5 would otherwise
// index blindly (it slices the ciphertext without a length check).
func decrypt(ed types.EncryptedData, key types.EncryptionKey, usage uint32) ([]byte, error) {
	if ed.EType != key.KeyType {
		return nil, errorf(ErrBadIntegrity, "data encrypted with enctype %d, key is %d", ed.EType, key.KeyType)
	}
	et, err := aesEtype(key)
	if err != nil {
		return nil, err
	}
	if len(ed.Cipher) < et.GetConfounderByteSize()+et.GetHMACBitLength()/8 {
		return nil, errorf(ErrMalformed, "ciphertext of %d bytes is too short", len(ed.Cipher))
	}
	b, err := crypto.DecryptMessage(ed.Cipher, key, usage)
	if err != nil {
		return nil, errorf(ErrBadIntegrity, "%v", err)
	}
	return b, nil
}

// wrapHeader is the 16-byte Wrap token header with EC and RRC zeroed, as used
// in the checksum (RFC 4121 4.2.4).
func wrapHeader(flags byte, seq uint64) []byte {
	h := []byte{0x05, 0x04, flags, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(h[8:], seq)
	return h
}

func wrapChecksum(key types.EncryptionKey, usage uint32, flags byte, seq uint64, payload []byte) ([]byte, error) {
	et, err := aesEtype(key)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, len(payload)+16)
	data = append(data, payload...)
	data = append(data, wrapHeader(flags, seq)...)
	sum, err := et.GetChecksumHash(key.KeyValue, data, usage)
	if err != nil {
		return nil, errorf(ErrBadIntegrity, "wrap checksum: %v", err)
	}
	return sum, nil
}

// sealWrap builds an integrity-only RFC 4121 Wrap token (RRC 0) carrying payload.
func sealWrap(payload []byte, flags byte, seq uint64, key types.EncryptionKey, usage uint32) ([]byte, error) {
	sum, err := wrapChecksum(key, usage, flags, seq, payload)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 16, 16+len(payload)+len(sum))
	copy(out, []byte{0x05, 0x04, flags, 0xff})
	binary.BigEndian.PutUint16(out[4:6], uint16(len(sum)))
	binary.BigEndian.PutUint64(out[8:], seq)
	out = append(out, payload...)
	return append(out, sum...), nil
}

// wrapToken is a parsed, not yet verified, integrity-only Wrap token.
type wrapToken struct {
	flags   byte
	seq     uint64
	payload []byte
	sum     []byte
}

// parseWrap parses an RFC 4121 Wrap token, undoing the right rotation (RRC) that
// some implementations apply, and refusing sealed (encrypted) tokens.
func parseWrap(b []byte, fromAcceptor bool) (wrapToken, error) {
	var wt wrapToken
	if len(b) > maxTokenLen {
		return wt, errorf(ErrMalformed, "wrap token of %d bytes", len(b))
	}
	if len(b) < 16 {
		return wt, errorf(ErrMalformed, "wrap token truncated (%d bytes)", len(b))
	}
	if b[0] != tokWrapCFX[0] || b[1] != tokWrapCFX[1] {
		return wt, errorf(ErrMalformed, "not an RFC 4121 wrap token (id %02x%02x)", b[0], b[1])
	}
	if b[3] != 0xff {
		return wt, errorf(ErrMalformed, "bad wrap token filler")
	}
	wt.flags = b[2]
	if (wt.flags&wrapSentByAcceptor != 0) != fromAcceptor {
		return wt, errorf(ErrMalformed, "wrap token direction flag wrong (flags %#x)", wt.flags)
	}
	if wt.flags&wrapSealed != 0 {
		return wt, errorf(ErrUnsupported, "sealed wrap token")
	}
	ec := int(binary.BigEndian.Uint16(b[4:6]))
	rrc := int(binary.BigEndian.Uint16(b[6:8]))
	wt.seq = binary.BigEndian.Uint64(b[8:16])
	data := b[16:]
	if len(data) > 0 && rrc%len(data) != 0 {
		r := rrc % len(data)
		rot := make([]byte, 0, len(data))
		rot = append(rot, data[r:]...)
		data = append(rot, data[:r]...)
	}
	if ec > len(data) {
		return wt, errorf(ErrMalformed, "wrap token checksum length %d exceeds %d bytes", ec, len(data))
	}
	wt.payload = data[:len(data)-ec]
	wt.sum = data[len(data)-ec:]
	return wt, nil
}

// verify checks the token's checksum with key and usage.
func (wt wrapToken) verify(key types.EncryptionKey, usage uint32) error {
	sum, err := wrapChecksum(key, usage, wt.flags, wt.seq, wt.payload)
	if err != nil {
		return err
	}
	if !hmac.Equal(sum, wt.sum) {
		return errorf(ErrBadIntegrity, "wrap token checksum mismatch")
	}
	return nil
}
