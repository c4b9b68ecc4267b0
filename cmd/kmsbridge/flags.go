package main

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/awsregions"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// Environment variables kmsbridge reads.
const (
	envPIN          = "KMSBRIDGE_PIN"
	envSOPIN        = "KMSBRIDGE_SO_PIN"
	envModule       = "KMSBRIDGE_PKCS11_MODULE"
	envModuleParams = "KMSBRIDGE_PKCS11_MODULE_PARAMS"
	envOneCall      = "KMSBRIDGE_PKCS11_ONE_CALL_AT_A_TIME"
)

// Flag names shared by several commands.
const (
	flagModule        = "module"
	flagPKCS11Timeout = "pkcs11-timeout"
	flagOneCall       = "pkcs11-one-call-at-a-time"
	flagModuleParams  = "module-params"
	flagTokenLabel    = "token-label"
	flagTokenSerial   = "token-serial"
	flagSlot          = "slot"
	flagPINFile       = "pin-file"
	flagSOPINFile     = "so-pin-file"
	flagRegion        = "region"
	flagProfile       = "profile"
	flagEndpointURL   = "endpoint-url"
	flagAllowEndpoint = "allow-endpoint"
	flagCABundle      = "ca-bundle"
	flagOutput        = "output"
	flagLogLevel      = "log-level"
	flagLogFormat     = "log-format"
	flagQuiet         = "quiet"
	flagKMSTimeout    = "kms-timeout"
)

const (
	catHSM    = "HSM"
	catKMS    = "KMS"
	catOutput = "Output"
)

func hsmFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagModule, Category: catHSM, Sources: cli.EnvVars(envModule), Usage: "path of the HSM vendor's PKCS#11 library", Value: ""},
		&cli.StringFlag{Name: flagModuleParams, Category: catHSM, Sources: cli.EnvVars(envModuleParams), Usage: "library parameters for C_Initialize (NSS softokn needs configdir='sql:DIR' ...)"},
		&cli.StringFlag{Name: flagTokenLabel, Category: catHSM, Usage: "choose the token by label"},
		&cli.StringFlag{Name: flagTokenSerial, Category: catHSM, Usage: "choose the token by serial number"},
		&cli.UintFlag{Name: flagSlot, Category: catHSM, Usage: "choose the token by slot ID"},
		&cli.StringFlag{Name: flagToken, Category: catHSM, Usage: "choose the token by PKCS#11 `URI`, e.g. 'pkcs11:token=ceremony' (module-path and pin-source honoured, pin-value refused)"},
		&cli.StringFlag{Name: flagPINFile, Category: catHSM, Usage: "read the user PIN from `FILE` (else $" + envPIN + ", else a prompt)"},
		&cli.DurationFlag{Name: flagPKCS11Timeout, Category: catHSM, Value: hsm.DefaultCallTimeout, Usage: "give up on one PKCS#11 call that has not returned after `DURATION`, saying what is known of its effect (a hung token is never waited on forever)"},
		&cli.BoolFlag{Name: flagOneCall, Category: catHSM, Sources: cli.EnvVars(envOneCall), Usage: "make one PKCS#11 call at a time, for a module that is not safe to call from several threads (kmsbridge otherwise runs calls on separate sessions at once, as PKCS#11 allows; docs/tokens.md)"},
	}
}

func kmsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagRegion, Category: catKMS, Usage: "AWS region (default: AWS_REGION or the profile's)"},
		&cli.StringFlag{Name: flagProfile, Category: catKMS, Usage: "AWS shared-config profile (default: AWS_PROFILE)"},
		&cli.StringFlag{Name: flagEndpointURL, Category: catKMS, Usage: "KMS endpoint `URL` (default: AWS's for the Region; never taken from AWS_ENDPOINT_URL* or AWS config files)"},
		allowEndpointFlag(),
		&cli.StringFlag{Name: flagCABundle, Category: catKMS, Usage: "verify the endpoint's TLS certificate against the CA certificates in PEM `FILE` instead of the system roots (recorded; AWS_CA_BUNDLE and ca_bundle are ignored)"},
		&cli.DurationFlag{Name: flagKMSTimeout, Category: catKMS, Value: awskms.DefaultKMSTimeout, Usage: "give up on one KMS request after `DURATION` (a hung call is then retried or reported, never waited on forever)"},
		kmsRateFlag(),
	}
}

// allowEndpointFlag confirms an endpoint that is not AWS's; wrap has it
// too, to accept offline a bundle from such an endpoint.
func allowEndpointFlag() cli.Flag {
	return &cli.StringFlag{Name: flagAllowEndpoint, Category: catKMS, Usage: "confirm that the KMS endpoint `URL`, not one AWS serves for the Region (e.g. an emulator on 127.0.0.1), is meant: the same URL as --endpoint-url; plain http only on loopback"}
}

func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Category: catOutput, Value: "text", Usage: "result format: text or json"},
		&cli.StringFlag{Name: flagLogLevel, Category: catOutput, Value: "info", Usage: "progress log on stderr: debug, info, warn, error"},
		&cli.StringFlag{Name: flagLogFormat, Category: catOutput, Value: "text", Usage: "progress log format: text (key=value) or json (one object per line, for a log collector)"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Category: catOutput, Usage: "no progress log: only warnings and errors on stderr"},
	}
}

// outputFormat returns "text" or "json", or a usage error.
func outputFormat(c *cliContext) (string, error) {
	switch f := c.String(flagOutput); f {
	case "text", "json":
		return f, nil
	default:
		return "", usageError{fmt.Sprintf("--output %q: choose text or json", f)}
	}
}

// newLogger logs progress to stderr, so stdout carries only the result.
// Every line's time is RFC 3339 in UTC with milliseconds, so a log read
// years later, or beside another host's, says exactly when.
func newLogger(c *cliContext) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String(flagLogLevel))); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: choose debug, info, warn or error", c.String(flagLogLevel))}
	}
	if c.Bool(flagQuiet) {
		if c.IsSet(flagLogLevel) {
			return nil, usageError{"--quiet and --log-level both set how much is logged: give one"}
		}
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				a.Value = slog.StringValue(a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
			}
			return a
		},
	}
	switch f := c.String(flagLogFormat); f {
	case "", "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	default:
		return nil, usageError{fmt.Sprintf("--log-format %q: choose text or json", f)}
	}
}

func tokenSelector(c *cliContext) (hsm.TokenSelector, error) {
	u, err := tokenURI(c)
	if err != nil {
		return hsm.TokenSelector{}, err
	}
	if u != nil {
		return uriTokenSelector(c, u)
	}
	sel := hsm.TokenSelector{Label: c.String(flagTokenLabel), Serial: c.String(flagTokenSerial)}
	if c.IsSet(flagSlot) {
		s := c.Uint(flagSlot)
		sel.Slot = &s
	}
	if err := sel.Validate(); err != nil {
		return sel, usageError{err.Error()}
	}
	return sel, nil
}

// session is an open, logged-in token and the module it came from.
type session struct {
	mod *hsm.Module
	tok *hsm.Token
}

func (s *session) Close() {
	if s.tok != nil {
		_ = s.tok.Close()
	}
	s.mod.Close()
}

// openToken loads the module, opens the chosen token and logs the user in.
func openToken(c *cliContext, log *slog.Logger) (*session, error) {
	return openTokenAs(c, log, false)
}

// openTokenAs opens the chosen token and logs in the user, or the
// Security Officer when so is true.
func openTokenAs(c *cliContext, log *slog.Logger, so bool) (*session, error) {
	sel, err := tokenSelector(c)
	if err != nil {
		return nil, err
	}
	cfg, err := moduleConfig(c)
	if err != nil {
		return nil, err
	}
	mod, err := hsm.LoadModule(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{mod: mod}
	s.tok, err = mod.OpenToken(sel)
	if err != nil {
		s.Close()
		return nil, err
	}
	id := s.tok.Identity()
	log.Info("opened token", "label", id.Label, "serial", id.Serial, "manufacturer", id.Manufacturer, "model", id.Model, "slot", id.Slot)
	who := "user"
	// The PIN lives in a byte slice that LoginPIN zeroes after C_Login.
	var pin []byte
	if so {
		who = "Security Officer"
		if pin, err = readSOPIN(c.String(flagSOPINFile), log); err == nil {
			err = s.tok.LoginSOPIN(pin)
		}
	} else if pin, err = readUserPIN(c, log); err == nil {
		err = s.tok.LoginPIN(pin)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	log.Info("logged in as "+who, "token", id.Label)
	return s, nil
}

// readUserPIN reads the user PIN from where this command takes it: the
// ceremony file's pin-source under --ceremony (unless --pin-file), else
// --pin-file, $KMSBRIDGE_PIN or the prompt.
func readUserPIN(c *cliContext, log *slog.Logger) ([]byte, error) {
	if f, ok := c.App.Metadata[mdCeremony].(*ceremony.File); ok && pinFile(c) == "" {
		return ceremonyPIN(f, log)
	}
	return readPIN(pinFile(c), log)
}

func kmsClient(c *cliContext) (awskms.API, error) {
	api, _, err := kmsClientRegion(c)
	return api, err
}

// kmsClientRegion is kmsClient, also returning the region in use.
func kmsClientRegion(c *cliContext) (awskms.API, string, error) {
	if d := c.Duration(flagKMSTimeout); c.IsSet(flagKMSTimeout) && d <= 0 {
		return nil, "", usageError{fmt.Sprintf("--%s %v: give a positive duration such as 30s", flagKMSTimeout, d)}
	}
	lim, err := kmsLimiter(c)
	if err != nil {
		return nil, "", err
	}
	client, err := newKMSClient(c, kmsOptions(c, c.String(flagRegion), lim))
	if err != nil {
		return nil, "", err
	}
	// A Region from AWS_REGION or the profile is checked as --region is.
	if err := awsregions.Check("the AWS Region (--region, else AWS_REGION or the profile's region)", client.Options().Region); err != nil {
		return nil, "", usageError{err.Error()}
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[mdKMSClient] = client
	return client, client.Options().Region, nil
}

// mdKMSClient holds the command's (home Region) KMS client: the record
// and the journal's scope name its endpoint.
const mdKMSClient = "kms-client"

// kmsOptions are the KMS client options of the command line (or of a
// ceremony file applied to it) for region.
func kmsOptions(c *cliContext, region string, lim *awskms.Limiter) awskms.ClientOptions {
	return awskms.ClientOptions{
		Region:        region,
		Profile:       c.String(flagProfile),
		EndpointURL:   c.String(flagEndpointURL),
		AllowEndpoint: c.String(flagAllowEndpoint),
		CABundle:      c.String(flagCABundle),
		Timeout:       c.Duration(flagKMSTimeout),
		Limiter:       lim,
	}
}

// newKMSClient makes a KMS client and logs the settings it ignored.
func newKMSClient(c *cliContext, o awskms.ClientOptions) (*awskms.Client, error) {
	client, err := awskms.NewClient(c.Context, o)
	if err != nil {
		return nil, err
	}
	for _, n := range client.Notices {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", n)
	}
	return client, nil
}

// kmsEndpoint is where the command's KMS client sends, if it has one
// (AWS's, or another cloud's: setCloudEndpoint).
func kmsEndpoint(c *cliContext) (kmsimport.Endpoint, bool) {
	if cl, ok := c.App.Metadata[mdKMSClient].(*awskms.Client); ok {
		return cl.Endpoint(), true
	}
	if l, ok := c.App.Metadata[mdCloudEndpoint].(awskms.Located); ok {
		return l.Endpoint(), true
	}
	return kmsimport.Endpoint{}, false
}

// mdCloudEndpoint holds where a Google or Azure client sends, so that
// every record entry names it as AWS's do.
const mdCloudEndpoint = "cloud-endpoint"

// setCloudEndpoint notes where the command's Google or Azure client
// sends: an Endpoint, or a *kmsimport.CloudEndpoint that also knows the
// TLS peer once it answered.
func setCloudEndpoint(c *cliContext, where any) {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	switch w := where.(type) {
	case awskms.Located:
		c.App.Metadata[mdCloudEndpoint] = w
	case kmsimport.Endpoint:
		c.App.Metadata[mdCloudEndpoint] = fixedEndpoint(w)
	}
}

// fixedEndpoint is a Located that says the same always.
type fixedEndpoint kmsimport.Endpoint

func (f fixedEndpoint) Endpoint() kmsimport.Endpoint { return kmsimport.Endpoint(f) }

func parseHex(flag, s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.ReplaceAll(s, ":", ""), "0x"))
	if err != nil || len(b) == 0 {
		return nil, usageError{fmt.Sprintf("--%s %q is not hex: give the CKA_ID as hex digits, e.g. 3f9a01c2", flag, s)}
	}
	return b, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// confirm asks a yes/no question on the terminal. Without a terminal it
// refuses, so scripts must say --yes.
func confirm(question string) (bool, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false, usageError{"no terminal to confirm on: add --yes to confirm in a script"}
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(tty, &answer)
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes", nil
}

// parseTime accepts RFC 3339 or a plain date, which means 00:00 UTC.
func parseTime(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, usageError{fmt.Sprintf("--%s %q is not a time: write RFC 3339 like 2027-06-30T00:00:00Z, or a date like 2027-06-30", flag, s)}
}

// onUsageError turns urfave/cli's flag parsing errors into usage errors
// (exit 2) that point at --help, instead of printing the whole help.
func onUsageError(_ context.Context, c *cli.Command, err error, _ bool) error {
	if msg := err.Error(); strings.HasPrefix(msg, "Required flag") {
		// Required flag "out" not set, Required flags "bundle, out" not set
		return usageError{fmt.Sprintf("%s: see %s --help", strings.Replace(msg, "Required flag", "required flag", 1), c.FullName())}
	}
	return usageError{fmt.Sprintf("%v: see kmsbridge %s --help", err, c.Name)}
}

// openRecorder opens the ceremony record for a command that has this token
// open, signing entries with --audit-key when given.
func (s *session) openRecorder(c *cliContext, command string, inputs map[string]string, log *slog.Logger) (*recorder, error) {
	if c.String(flagRecord) == "" {
		if c.String(flagAuditKey) != "" {
			return nil, usageError{"--audit-key signs the ceremony record: give --record FILE too"}
		}
		return nil, nil
	}
	var (
		signer crypto.Signer
		id     []byte
	)
	if label := c.String(flagAuditKey); label != "" {
		sg, kid, err := s.auditSigner(label)
		if err != nil {
			return nil, err
		}
		signer, id = sg, kid
	}
	return openRecorder(c, command, inputs, log, signer, id)
}

// auditSigner finds the audit key labelled label in the open token and
// returns a signer over it and its CKA_ID.
func (s *session) auditSigner(label string) (*hsm.AuditSigner, []byte, error) {
	k, err := s.tok.FindAuditKey(hsm.KeySelector{Label: label})
	if errors.Is(err, hsm.ErrKeyNotFound) {
		tok := s.tok.Identity()
		return nil, nil, fmt.Errorf("%w: --audit-key %q: token %q has no audit key with that label: check the label, or create one first with kmsbridge audit-key create --token-label %s --label %s --out audit.pem",
			hsm.ErrKeyNotFound, kmsimport.Excerpt(label), tok.Label, tok.Label, kmsimport.Excerpt(label))
	}
	if err != nil {
		return nil, nil, err
	}
	sg, err := s.tok.AuditSigner(k)
	if err != nil {
		return nil, nil, err
	}
	return sg, k.ID, nil
}
