package gcpemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/genproto/googleapis/api/annotations"
	locationpb "google.golang.org/genproto/googleapis/cloud/location"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The REST front end: Cloud KMS's v1 JSON-over-HTTP surface, as gcloud
// and Google's REST clients speak it, on the same state as the gRPC
// server. Its routes are not written out here: they are read from the
// google.api.http annotations of kmspb's KeyManagementService, which are
// the transcoding rules Google's REST reference is generated from, and
// every call goes through the gRPC method handler and its interceptor, so
// the two front ends share one code path for validation, project checks
// and injected faults. docs/gcp-import.md lists the rules and sources.

// maxRESTBody bounds a request body; ImportCryptoKeyVersion's wrapped
// key, the largest field, is refused above 64 KiB anyway.
const maxRESTBody = 256 << 10

// restRoute is one HTTP binding of a KeyManagementService method.
type restRoute struct {
	verb    string         // HTTP method
	path    *regexp.Regexp // the URL template, one group per variable
	vars    []string       // request field of each group
	body    string         // "*", a request field, or "" for none
	input   protoreflect.MessageType
	method  string // gRPC full method name, for the interceptor
	srv     func(*Server) any
	handler grpc.MethodHandler
}

var restRoutes = append(
	buildRESTRoutes(kmspb.File_google_cloud_kms_v1_service_proto.Services().ByName("KeyManagementService"), kmsHandlers()),
	buildRESTRoutes(locationpb.File_google_cloud_location_locations_proto.Services().ByName("Locations"), locationHandlers())...)

type boundHandler struct {
	srv func(*Server) any
	h   grpc.MethodHandler
}

func kmsHandlers() map[string]boundHandler {
	out := map[string]boundHandler{}
	for _, m := range kmspb.KeyManagementService_ServiceDesc.Methods {
		out[m.MethodName] = boundHandler{srv: func(s *Server) any { return s }, h: m.Handler}
	}
	return out
}

// locationHandlers serves GetLocation (Google's KMS client and gcloud
// describe a location through it); locationpb exports no service
// description, so its one handler is written as the generated ones are.
func locationHandlers() map[string]boundHandler {
	const full = "/google.cloud.location.Locations/GetLocation"
	h := func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(locationpb.GetLocationRequest)
		if err := dec(in); err != nil {
			return nil, err
		}
		call := func(ctx context.Context, req any) (any, error) {
			return srv.(*locations).GetLocation(ctx, req.(*locationpb.GetLocationRequest))
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, call)
	}
	return map[string]boundHandler{"GetLocation": {srv: func(*Server) any { return &locations{} }, h: h}}
}

func buildRESTRoutes(svc protoreflect.ServiceDescriptor, handlers map[string]boundHandler) []restRoute {
	var out []restRoute
	for i := 0; i < svc.Methods().Len(); i++ {
		md := svc.Methods().Get(i)
		h, ok := handlers[string(md.Name())]
		if !ok {
			continue
		}
		rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			continue
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			panic(err)
		}
		full := "/" + string(svc.FullName()) + "/" + string(md.Name())
		for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
			verb, tmpl := httpRulePattern(r)
			if tmpl == "" {
				continue
			}
			re, vars := compileTemplate(tmpl)
			out = append(out, restRoute{verb: verb, path: re, vars: vars, body: r.GetBody(), input: mt, method: full, srv: h.srv, handler: h.h})
		}
	}
	return out
}

func httpRulePattern(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	}
	return "", ""
}

// compileTemplate turns a google.api.http path template such as
// "/v1/{name=projects/*/locations/*/keyRings/*/cryptoKeys/**}:encrypt"
// into a regular expression. A '*' segment matches one path segment, '**'
// several; neither spans the ':' that starts a custom verb (resource IDs
// cannot contain one).
func compileTemplate(tmpl string) (*regexp.Regexp, []string) {
	var re strings.Builder
	var vars []string
	re.WriteString("^")
	for tmpl != "" {
		open := strings.IndexByte(tmpl, '{')
		if open < 0 {
			re.WriteString(segments(tmpl))
			break
		}
		re.WriteString(segments(tmpl[:open]))
		end := strings.IndexByte(tmpl, '}')
		field, pattern, ok := strings.Cut(tmpl[open+1:end], "=")
		if !ok {
			pattern = "*"
		}
		vars = append(vars, field)
		re.WriteString("(" + segments(pattern) + ")")
		tmpl = tmpl[end+1:]
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()), vars
}

func segments(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		switch p {
		case "*":
			parts[i] = `[^/:]+`
		case "**":
			parts[i] = `[^:]+`
		default:
			parts[i] = regexp.QuoteMeta(p)
		}
	}
	return strings.Join(parts, "/")
}

// RESTHandler is the REST front end on s's state.
func (s *Server) RESTHandler() http.Handler { return http.HandlerFunc(s.serveREST) }

// ServeREST serves the REST front end on l, which must be loopback.
func (s *Server) ServeREST(l net.Listener) error {
	if err := CheckLoopback(l.Addr().String()); err != nil {
		return err
	}
	hs := &http.Server{Handler: s.RESTHandler(), ReadHeaderTimeout: 10 * time.Second}
	return hs.Serve(l)
}

// System parameters Google's REST endpoints accept on any method.
var systemParams = map[string]bool{"alt": true, "$alt": true, "prettyPrint": true, "fields": true, "key": true,
	"quotaUser": true, "$.xgafv": true, "callback": true, "upload_protocol": true, "uploadType": true}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	if !loopbackHost(r.Host) {
		writeRESTError(w, status.Newf(codes.PermissionDenied, "Host %q is not a loopback name: the emulator answers requests addressed to 127.0.0.1, ::1 or localhost only.", r.Host))
		return
	}
	q := r.URL.Query()
	enumInt := false
	for _, alt := range append(q["$alt"], q["alt"]...) {
		format, opts, _ := strings.Cut(alt, ";")
		if format != "json" {
			writeRESTError(w, status.Newf(codes.InvalidArgument, "Unsupported response format %q: the emulator answers alt=json only.", alt))
			return
		}
		enumInt = enumInt || opts == "enum-encoding=int"
	}
	var rt *restRoute
	var vals []string
	for i := range restRoutes {
		if m := restRoutes[i].path.FindStringSubmatch(r.URL.Path); m != nil && restRoutes[i].verb == r.Method {
			rt, vals = &restRoutes[i], m[1:]
			break
		}
	}
	if rt == nil {
		writeRESTError(w, status.Newf(codes.NotFound, "The requested URL %s %s was not found on this server.", r.Method, r.URL.Path))
		return
	}
	req, err := rt.request(r, q, vals)
	if err != nil {
		writeRESTError(w, status.Convert(err))
		return
	}
	dec := func(v any) error { proto.Merge(v.(proto.Message), req); return nil }
	resp, err := rt.handler(rt.srv(s), r.Context(), dec, s.intercept)
	if err != nil {
		writeRESTError(w, status.Convert(err))
		return
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseEnumNumbers: enumInt}.Marshal(resp.(proto.Message))
	if err != nil {
		writeRESTError(w, status.New(codes.Internal, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(append(out, '\n'))
}

// request builds rt's request message from the path variables, the body
// and the query parameters, as google.api.http transcoding defines.
func (rt *restRoute) request(r *http.Request, q map[string][]string, vals []string) (proto.Message, error) {
	msg := rt.input.New()
	fields := msg.Descriptor().Fields()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRESTBody+1))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Reading the request body: %v", err)
	}
	if len(body) > maxRESTBody {
		return nil, status.Errorf(codes.InvalidArgument, "The request body is larger than %d bytes.", maxRESTBody)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		target := msg
		switch rt.body {
		case "":
			return nil, status.Errorf(codes.InvalidArgument, "Invalid JSON payload received. %s %s takes no request body.", r.Method, r.URL.Path)
		case "*":
		default:
			target = msg.Mutable(fields.ByName(protoreflect.Name(rt.body))).Message()
		}
		if err := protojson.Unmarshal(body, target.Interface()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid JSON payload received. %v", err)
		}
	}
	for i, name := range rt.vars {
		msg.Set(fields.ByName(protoreflect.Name(name)), protoreflect.ValueOfString(vals[i]))
	}
	for key, values := range q {
		if systemParams[key] {
			continue
		}
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil || fd.IsList() || fd.IsMap() || fd.Message() != nil || rt.body == "*" || string(fd.Name()) == rt.body {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field '%s' could not be found in request message.", key, key)
		}
		v, err := scalar(fd, values[len(values)-1])
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid value at '%s' (%s), %q", key, fd.Kind(), values[len(values)-1])
		}
		msg.Set(fd, v)
	}
	return msg.Interface(), nil
}

// scalar parses a query parameter into a scalar field's value.
func scalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err == nil && fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			err = fmt.Errorf("no such value")
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), err
	}
	return protoreflect.Value{}, fmt.Errorf("unsupported kind %s", fd.Kind())
}

// httpStatus is the HTTP status of each canonical code, per the "HTTP
// Mapping" of google/rpc/code.proto.
var httpStatus = map[codes.Code]int{
	codes.OK: 200, codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
	codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403, codes.Unauthenticated: 401,
	codes.ResourceExhausted: 429, codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400,
	codes.Unimplemented: 501, codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500,
}

// writeRESTError writes Google's JSON error body, as recorded:
// {"error":{"code":404,"message":"…","status":"NOT_FOUND"}}.
func writeRESTError(w http.ResponseWriter, st *status.Status) {
	hs, ok := httpStatus[st.Code()]
	if !ok {
		hs = 500
	}
	type body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	out, _ := json.MarshalIndent(map[string]body{"error": {Code: hs, Message: st.Message(), Status: rpccode.Code(st.Code()).String()}}, "", "  ")
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(hs)
	_, _ = w.Write(append(out, '\n'))
}

func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
