package attest

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

const cryptoSHA256 = crypto.SHA256

// PKCS#11 attribute types as the statement carries them, and the vendor
// key check value; docs/gcp-import.md gives the layout's sources.
const (
	AttrClass            uint32 = 0x000
	AttrToken            uint32 = 0x001
	AttrKeyType          uint32 = 0x100
	AttrSensitive        uint32 = 0x103
	AttrDecrypt          uint32 = 0x105
	AttrUnwrap           uint32 = 0x107
	AttrModulus          uint32 = 0x120
	AttrModulusBits      uint32 = 0x121
	AttrPublicExponent   uint32 = 0x122
	AttrExtractable      uint32 = 0x162
	AttrLocal            uint32 = 0x163
	AttrNeverExtractable uint32 = 0x164
	AttrAlwaysSensitive  uint32 = 0x165
	AttrKCV              uint32 = 0x173
	AttrVendorEKCV       uint32 = 0x1003

	ClassPublicKey  uint64 = 2
	ClassPrivateKey uint64 = 3
	KeyTypeRSA      uint64 = 0
)

const (
	headerLen     = 16 // response code, flags, total size, attribute size
	infoLen       = 8  // object version, flags, two offsets
	objHeaderLen  = 12 // handle, attribute count, size
	tlvHeaderLen  = 8
	maxObjects    = 2
	maxAttributes = 256
)

// Object is one attested PKCS#11 object: its handle and its attributes
// by type.
type Object struct {
	Handle uint32
	Attrs  map[uint32][]byte
}

// Uint reads a numeric attribute (big-endian, 1 to 8 bytes).
func (o *Object) Uint(t uint32) (uint64, bool) {
	v, ok := o.Attrs[t]
	if !ok || len(v) == 0 || len(v) > 8 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		n = n<<8 | uint64(b)
	}
	return n, true
}

// Bool reads a CK_BBOOL attribute: exactly one byte, 0 or 1.
func (o *Object) Bool(t uint32) (value, present bool, err error) {
	v, ok := o.Attrs[t]
	if !ok {
		return false, false, nil
	}
	if len(v) != 1 || v[0] > 1 {
		return false, true, fmt.Errorf("value %x is not a CK_BBOOL", v)
	}
	return v[0] == 1, true, nil
}

// gunzip decompresses a statement, bounded by MaxContent.
func gunzip(content []byte) ([]byte, error) {
	if len(content) == 0 {
		return nil, refuse("the attestation has no content")
	}
	if len(content) > MaxContent {
		return nil, refuse("the attestation content is %d bytes, more than the %d a statement can be", len(content), MaxContent)
	}
	zr, err := gzip.NewReader(bytes.NewReader(content))
	if err != nil {
		return nil, refuse("the attestation content is not gzip-compressed as CAVIUM_V2_COMPRESSED requires: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxContent+1))
	if err != nil {
		return nil, refuse("the attestation content does not decompress: %v", err)
	}
	if len(out) > MaxContent {
		return nil, refuse("the attestation content decompresses to more than %d bytes", MaxContent)
	}
	return out, nil
}

// Parse reads the signed part of a CAVIUM_V2 statement (without the
// signature): a 16-byte header whose total size counts the signature too,
// the object handles, an info header with each object's offset, and each
// object's attributes as type-length-value triples. Every length is
// checked against what is there; nothing may be left over.
func Parse(body []byte) ([]Object, error) {
	if len(body) < headerLen {
		return nil, refuse("the statement is too short for its header")
	}
	be := binary.BigEndian
	code, total, attrSize := be.Uint32(body[0:]), be.Uint32(body[8:]), be.Uint32(body[12:])
	if code != 0 {
		return nil, refuse("the statement carries HSM response code %d, not success", code)
	}
	infoAt := uint64(len(body)) - uint64(attrSize)
	if uint64(attrSize) > uint64(len(body)) || infoAt < headerLen || uint64(total) <= uint64(len(body)) {
		return nil, refuse("the statement's sizes do not fit its length (total %d, attributes %d, signed part %d bytes)", total, attrSize, len(body))
	}
	handlesLen := infoAt - headerLen
	if handlesLen%8 != 0 || handlesLen == 0 || handlesLen/8 > maxObjects {
		return nil, refuse("the statement's object handles take %d bytes; expected one or two 8-byte handles", handlesLen)
	}
	var handles []uint64
	for p := uint64(headerLen); p < infoAt; p += 8 {
		handles = append(handles, be.Uint64(body[p:]))
	}
	attrs := body[infoAt:]
	if len(attrs) < infoLen {
		return nil, refuse("the statement's attribute section is too short")
	}
	offsets := []uint16{be.Uint16(attrs[4:]), be.Uint16(attrs[6:])}
	if offsets[1] == 0 {
		offsets = offsets[:1]
	}
	if len(offsets) != len(handles) {
		return nil, refuse("the statement lists %d object handles but %d objects", len(handles), len(offsets))
	}
	var objs []Object
	end := infoLen
	for i, off := range offsets {
		if int(off) != end {
			return nil, refuse("object %d of the statement starts at %d, not right after the previous part (%d)", i, off, end)
		}
		o, n, err := parseObject(attrs[off:])
		if err != nil {
			return nil, err
		}
		if uint64(o.Handle) != handles[i] {
			return nil, refuse("object %d of the statement has handle %#x, but the header lists %#x", i, o.Handle, handles[i])
		}
		objs = append(objs, o)
		end += n
	}
	if end != len(attrs) {
		return nil, refuse("the statement has %d unexplained bytes after its objects", len(attrs)-end)
	}
	return objs, nil
}

func parseObject(b []byte) (Object, int, error) {
	be := binary.BigEndian
	if len(b) < objHeaderLen {
		return Object{}, 0, refuse("an attested object is cut short")
	}
	o := Object{Handle: be.Uint32(b), Attrs: map[uint32][]byte{}}
	count, size := be.Uint32(b[4:]), be.Uint32(b[8:])
	if count > maxAttributes || uint64(size) > uint64(len(b)-objHeaderLen) {
		return o, 0, refuse("attested object %#x claims %d attributes in %d bytes, more than the statement holds", o.Handle, count, size)
	}
	tlvs := b[objHeaderLen : objHeaderLen+int(size)]
	p := 0
	for range count {
		if len(tlvs)-p < tlvHeaderLen {
			return o, 0, refuse("an attribute of object %#x is cut short", o.Handle)
		}
		t, l := be.Uint32(tlvs[p:]), be.Uint32(tlvs[p+4:])
		p += tlvHeaderLen
		if uint64(l) > uint64(len(tlvs)-p) {
			return o, 0, refuse("attribute %#x of object %#x claims %d bytes, more than the object holds", t, o.Handle, l)
		}
		if _, dup := o.Attrs[t]; dup {
			return o, 0, refuse("attribute %#x appears twice in object %#x", t, o.Handle)
		}
		o.Attrs[t] = tlvs[p : p+int(l) : p+int(l)]
		p += int(l)
	}
	if p != len(tlvs) {
		return o, 0, refuse("object %#x has %d bytes beyond its attributes", o.Handle, len(tlvs)-p)
	}
	return o, objHeaderLen + int(size), nil
}

// Marshal encodes objects as the signed part of a CAVIUM_V2 statement
// whose signature will be sigLen bytes; attributes are written in
// ascending type order. The Cloud KMS emulator uses it; real statements
// come from the HSM.
func Marshal(objs []Object, sigLen int) []byte {
	var sec bytes.Buffer
	be := binary.BigEndian
	offsets := make([]uint16, 2)
	var objBufs [][]byte
	at := infoLen
	for i, o := range objs {
		var tl bytes.Buffer
		types := make([]uint32, 0, len(o.Attrs))
		for t := range o.Attrs {
			types = append(types, t)
		}
		sort.Slice(types, func(a, b int) bool { return types[a] < types[b] })
		for _, t := range types {
			_ = binary.Write(&tl, be, t)
			_ = binary.Write(&tl, be, uint32(len(o.Attrs[t])))
			tl.Write(o.Attrs[t])
		}
		var ob bytes.Buffer
		_ = binary.Write(&ob, be, o.Handle)
		_ = binary.Write(&ob, be, uint32(len(types)))
		_ = binary.Write(&ob, be, uint32(tl.Len()))
		ob.Write(tl.Bytes())
		offsets[i] = uint16(at)
		at += ob.Len()
		objBufs = append(objBufs, ob.Bytes())
	}
	_ = binary.Write(&sec, be, uint16(1))
	_ = binary.Write(&sec, be, uint16(3))
	_ = binary.Write(&sec, be, offsets[0])
	_ = binary.Write(&sec, be, offsets[1])
	for _, ob := range objBufs {
		sec.Write(ob)
	}
	var out bytes.Buffer
	bodyLen := headerLen + 8*len(objs) + sec.Len()
	_ = binary.Write(&out, be, uint32(0))
	_ = binary.Write(&out, be, uint32(3))
	_ = binary.Write(&out, be, uint32(bodyLen+sigLen))
	_ = binary.Write(&out, be, uint32(sec.Len()))
	for _, o := range objs {
		_ = binary.Write(&out, be, uint64(o.Handle))
	}
	out.Write(sec.Bytes())
	return out.Bytes()
}
