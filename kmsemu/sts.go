package kmsemu

import (
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// STS GetCallerIdentity, served at the KMS endpoint so that a client that
// names the emulator (and nothing else) can learn the account its
// credentials belong to: kmsbridge scopes its journal by it. The shape is
// the AWS Security Token Service API's (awsQuery protocol, 2011-06-15) as
// docs/kms-emulator.md cites: a form-encoded POST with
// Action=GetCallerIdentity&Version=2011-06-15, answered with
// <GetCallerIdentityResponse><GetCallerIdentityResult> holding Arn, UserId
// and Account, and <ResponseMetadata><RequestId>.

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// stsCallerIdentity is the emulator's caller: the account's root user.
type stsGetCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// serveSTS answers an STS (awsQuery) request and reports whether r was
// one: a POST without X-Amz-Target whose body is form-encoded.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return false
	}
	start := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	form, perr := url.ParseQuery(string(body))
	reqID := newUUID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", reqID)
	fail := func(status int, code, msg string) {
		e := stsErrorResponse{Xmlns: stsNamespace, RequestID: reqID}
		e.Error.Type, e.Error.Code, e.Error.Message = "Sender", code, msg
		w.WriteHeader(status)
		_, _ = w.Write([]byte(xml.Header))
		_ = xml.NewEncoder(w).Encode(e)
		s.log.Warn("sts request", "op", form.Get("Action"), "outcome", code, "duration", time.Since(start).Round(time.Microsecond), "message", msg)
	}
	switch {
	case err != nil || len(body) > maxRequestBody || perr != nil:
		fail(http.StatusBadRequest, "MalformedQueryString", "the request body is not a form-encoded STS query")
		return true
	case form.Get("Action") != "GetCallerIdentity":
		fail(http.StatusBadRequest, "InvalidAction", "kms-emulator serves only the STS action GetCallerIdentity, not "+form.Get("Action"))
		return true
	case form.Get("Version") != "2011-06-15":
		fail(http.StatusBadRequest, "InvalidAction", "STS API version "+form.Get("Version")+" is not 2011-06-15")
		return true
	}
	resp := stsGetCallerIdentityResponse{Xmlns: stsNamespace, RequestID: reqID}
	resp.Result.Account = s.accountID
	resp.Result.Arn = "arn:aws:iam::" + s.accountID + ":root"
	resp.Result.UserID = s.accountID
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
	s.log.Info("sts request", "op", "GetCallerIdentity", "outcome", "ok", "duration", time.Since(start).Round(time.Microsecond))
	return true
}
