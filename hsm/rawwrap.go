package hsm

/*
#cgo linux LDFLAGS: -ldl
#cgo freebsd LDFLAGS: -ldl
#cgo CFLAGS: -I${SRCDIR}/include

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// The five platform macros pkcs11.h asks its includer to define, as they
// are on every Unix: no packing, plain pointers (include/pkcs11.h, top).
#define CK_PTR *
#define CK_DEFINE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

// raw_open returns a new reference to the library at path if, and only if,
// this process has already loaded it; it never loads anything. On failure
// dlerror's text is copied into errbuf here, on the same OS thread as the
// dlopen, because dlerror is per thread and a goroutine may move.
static void *raw_open(const char *path, char *errbuf, size_t errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) {
		const char *e = dlerror();
		strncpy(errbuf, e ? e : "not loaded in this process", errlen - 1);
		errbuf[errlen - 1] = 0;
	}
	return h;
}

// miekg_ctx is the context github.com/miekg/pkcs11 v1.1.2 keeps behind a
// *pkcs11.Ctx (its pkcs11.go, "struct ctx"): the dlopen handle of the
// library and the one function list it got from C_GetFunctionList and
// initialised. raw_ctx_list reads it, after checking that its handle is the
// library's: a layout that differs would fail that check, never be used.
struct miekg_ctx {
	void *handle;
	CK_FUNCTION_LIST_PTR sym;
};

static CK_FUNCTION_LIST_PTR raw_ctx_list(void *ctx, void *h) {
	struct miekg_ctx *c = (struct miekg_ctx *) ctx;
	if (c == NULL || c->handle != h) {
		return NULL;
	}
	return c->sym;
}

// raw_get_info calls C_GetInfo, which a library answers with
// CKR_CRYPTOKI_NOT_INITIALIZED until C_Initialize has run.
static CK_RV raw_get_info(CK_FUNCTION_LIST_PTR f) {
	CK_INFO info;
	return f->C_GetInfo(&info);
}

// raw_wrap is one C_WrapKey with a parameterless mechanism. out may be NULL
// for a size query; *out_len is the buffer size in and the length out.
static CK_RV raw_wrap(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE sh, CK_MECHANISM_TYPE mt,
		CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
	CK_MECHANISM m = { mt, NULL_PTR, 0 };
	return f->C_WrapKey(sh, &m, wrapping, key, out, out_len);
}

// raw_get_label is one C_GetAttributeValue of CKA_LABEL into buf, of
// *len bytes; *len is the label's length out (or CK_UNAVAILABLE_INFORMATION).
static CK_RV raw_get_label(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE sh, CK_OBJECT_HANDLE o,
		CK_BYTE_PTR buf, CK_ULONG_PTR len) {
	CK_ATTRIBUTE a = { CKA_LABEL, buf, *len };
	CK_RV rv = f->C_GetAttributeValue(sh, o, &a, 1);
	*len = a.ulValueLen;
	return rv;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// kwpOutputLen is the length of an RFC 5649 (AES key wrap with padding)
// wrap of n bytes: the input padded to a multiple of 8, plus the 8-byte
// integrity block.
func kwpOutputLen(n int) int { return (n+7)/8*8 + 8 }

// rawModule reaches the function list miekg/pkcs11 loaded and initialised,
// for the calls miekg/pkcs11 cannot make the way a token needs: its
// Ctx.WrapKey always sizes the output with a NULL-buffer query first, and
// NSS softokn 3.87 under-reports that size for CKM_AES_KEY_WRAP_KWP.
//
// It is the very function list the Module calls, never one got by a second
// C_GetFunctionList: p11-kit's proxy and its RPC client (p11-kit-client.so)
// hand out a fresh, uninitialised instance on each C_GetFunctionList, whose
// sessions and objects are not the Module's. So it reaches the same
// C_Initialize, the same sessions and the same object handles. It never
// initialises, finalises, opens or closes anything in the token, and it
// holds its own dlopen reference, so the library stays mapped until close
// even if the Module is closed first (calls then answer
// CKR_CRYPTOKI_NOT_INITIALIZED). Like every other call on a Token, its calls
// must not run concurrently with other calls on the same session. It is an
// extra, never a requirement: when it cannot be had, the Module has none and
// the one-call wrap is reported as impossible on that module.
type rawModule struct {
	path   string
	handle unsafe.Pointer
	fl     C.CK_FUNCTION_LIST_PTR
}

// openRawModule returns the function list ctx, a miekg/pkcs11 context on
// the library at path, calls. The library must already be loaded and
// initialised in this process through ctx (as LoadModule does): it is
// dlopened with RTLD_NOW|RTLD_NOLOAD, so it is never loaded a second time,
// the handle must be ctx's own, and C_GetInfo must succeed. path must be the
// string the library was loaded by, or another name of the same file.
// Errors wrap ErrModule.
func openRawModule(ctx *pkcs11.Ctx, path string) (*rawModule, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var errbuf [256]C.char
	h := C.raw_open(cpath, &errbuf[0], C.size_t(len(errbuf)))
	if h == nil {
		return nil, fmt.Errorf("%w: %s is not loaded in this process (%s): load it with LoadModule first", ErrModule, path, C.GoString(&errbuf[0]))
	}
	r := &rawModule{path: path, handle: h}
	if ctx != nil {
		// *pkcs11.Ctx is a struct whose one field is its C context.
		r.fl = C.raw_ctx_list(*(*unsafe.Pointer)(unsafe.Pointer(ctx)), h)
	}
	if r.fl == nil {
		r.close()
		return nil, fmt.Errorf("%w: %s: the PKCS#11 context given is not a context on this library", ErrModule, path)
	}
	if rv := C.raw_get_info(r.fl); rv != C.CKR_OK {
		r.close()
		return nil, fmt.Errorf("%w: %s: %w", ErrModule, path, newError("C_GetInfo", pkcs11.Error(rv)))
	}
	return r, nil
}

// close drops this handle's reference to the library. It does not finalise
// it: the Module that loaded it still owns it. Closing twice is harmless.
func (r *rawModule) close() {
	if r == nil || r.handle == nil {
		return
	}
	C.dlclose(r.handle)
	r.handle, r.fl = nil, nil
}

// wrapKeyLen asks the token, with a NULL-buffer C_WrapKey, how long the
// wrap of key under wrappingKey with mech (no parameters) will be. For
// CKM_AES_KEY_WRAP_KWP NSS softokn 3.87 answers with the plaintext length,
// from which kwpOutputLen gives the real size. Errors are pkcs11.Error.
func (r *rawModule) wrapKeyLen(sh pkcs11.SessionHandle, mech uint, wrappingKey, key pkcs11.ObjectHandle) (int, error) {
	if r == nil || r.fl == nil {
		return 0, fmt.Errorf("%w: raw PKCS#11 handle is closed", ErrModule)
	}
	var n C.CK_ULONG
	rv := C.raw_wrap(r.fl, C.CK_SESSION_HANDLE(sh), C.CK_MECHANISM_TYPE(mech),
		C.CK_OBJECT_HANDLE(wrappingKey), C.CK_OBJECT_HANDLE(key), nil, &n)
	if rv != C.CKR_OK {
		return 0, pkcs11.Error(rv)
	}
	return int(n), nil
}

// wrapKeySized calls C_WrapKey once with mechanism mech (no parameters) and
// an output buffer of size bytes, with no size query before it. It returns
// the wrapped bytes, truncated to the length the token returned, or
// pkcs11.Error(rv) for a non-OK return (CKR_BUFFER_TOO_SMALL when size is
// too small); wrap that with newError("C_WrapKey", err). A token that
// claims to have written more than size bytes is an error, never a read
// past the buffer.
func (r *rawModule) wrapKeySized(sh pkcs11.SessionHandle, mech uint, wrappingKey, key pkcs11.ObjectHandle, size int) ([]byte, error) {
	if r == nil || r.fl == nil {
		return nil, fmt.Errorf("%w: raw PKCS#11 handle is closed", ErrModule)
	}
	if size <= 0 {
		return nil, fmt.Errorf("C_WrapKey: output buffer size %d: must be positive", size)
	}
	// C memory, so the token writes where the Go collector never looks.
	buf := C.malloc(C.size_t(size))
	if buf == nil {
		return nil, fmt.Errorf("C_WrapKey: cannot allocate %d bytes", size)
	}
	defer C.free(buf)
	n := C.CK_ULONG(size)
	rv := C.raw_wrap(r.fl, C.CK_SESSION_HANDLE(sh), C.CK_MECHANISM_TYPE(mech),
		C.CK_OBJECT_HANDLE(wrappingKey), C.CK_OBJECT_HANDLE(key), (*C.CK_BYTE)(buf), &n)
	if rv != C.CKR_OK {
		return nil, pkcs11.Error(rv)
	}
	if uint64(n) > uint64(size) {
		return nil, fmt.Errorf("C_WrapKey: the token reports %d bytes written into a %d-byte buffer: its output is not usable", uint64(n), size)
	}
	return C.GoBytes(buf, C.int(n)), nil
}

// labelBufLen is the buffer labelOneCall reads a label into: longer labels
// answer CKR_BUFFER_TOO_SMALL, and the caller reads them the usual way.
const labelBufLen = 256

// labelOneCall reads o's CKA_LABEL, and nothing else, with one
// C_GetAttributeValue into a labelBufLen-byte buffer. miekg/pkcs11's
// GetAttributeValue makes two calls for every read (a NULL-buffer length
// query, then the read), and on SoftHSM2's file store each call re-reads
// the object's file and decrypts the attribute (docs/tokens.md): a bulk
// run's one read of the token's labels made twice the calls it needs.
// Errors are pkcs11.Error (CKR_BUFFER_TOO_SMALL for a longer label).
func (r *rawModule) labelOneCall(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) ([]byte, error) {
	if r == nil || r.fl == nil {
		return nil, fmt.Errorf("%w: raw PKCS#11 handle is closed", ErrModule)
	}
	buf := make([]byte, labelBufLen)
	n := C.CK_ULONG(len(buf))
	rv := C.raw_get_label(r.fl, C.CK_SESSION_HANDLE(sh), C.CK_OBJECT_HANDLE(o), (*C.CK_BYTE)(unsafe.Pointer(&buf[0])), &n)
	if rv != C.CKR_OK {
		return nil, pkcs11.Error(rv)
	}
	if uint64(n) > uint64(len(buf)) {
		return nil, fmt.Errorf("C_GetAttributeValue: the token reports a %d-byte label written into a %d-byte buffer: its answer is not usable", uint64(n), len(buf))
	}
	return buf[:n:n], nil
}
