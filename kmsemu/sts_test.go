package kmsemu

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestGetCallerIdentityThroughTheSDK: the official STS client, pointed at
// the emulator, learns the emulator's account.
func TestGetCallerIdentityThroughTheSDK(t *testing.T) {
	t.Parallel()
	s := New(Options{AccountID: "444455556666"})
	ts := httptest.NewServer(s)
	defer ts.Close()
	c := sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(ts.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	out, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != "444455556666" || aws.ToString(out.Arn) != "arn:aws:iam::444455556666:root" || aws.ToString(out.UserId) == "" {
		t.Fatalf("GetCallerIdentity = %+v", out)
	}
	// Any other STS action is refused, as an STS error the SDK parses.
	_, err = c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::444455556666:role/r"), RoleSessionName: aws.String("s")})
	if err == nil || !strings.Contains(err.Error(), "InvalidAction") {
		t.Fatalf("AssumeRole: %v, want InvalidAction", err)
	}
}
