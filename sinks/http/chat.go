package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
)

// Chat robot presets: a webhook, a text and, for DingTalk and Feishu, a
// signing secret. Each preset builds its vendor's message body, signs it
// the way the vendor documents, and reads the vendor's answer, which for
// DingTalk, WeCom and Feishu is HTTP 200 with an error code in the body.

// chat is the preset of one target.
type chat struct {
	kind   string
	secret string
	text   *value // nil: the transformed body is the message
}

// DingTalkSign returns the sign parameter of a DingTalk robot request (before
// URL encoding): Base64(HMAC-SHA256(key=secret, timestamp+"\n"+secret)),
// timestamp in milliseconds.
func DingTalkSign(timestampMillis int64, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestampMillis, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// FeishuSign returns the sign field of a Feishu (Lark) robot message:
// Base64(HMAC-SHA256(key=timestamp+"\n"+secret, empty message)), timestamp
// in seconds.
func FeishuSign(timestampSeconds int64, secret string) string {
	m := hmac.New(sha256.New, []byte(strconv.FormatInt(timestampSeconds, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// message builds the request for one event: the URL to post to (the
// webhook, signed for DingTalk) and the body. text is the message text;
// when raw is set instead, it is a whole vendor message (a transform that
// made JSON: a markdown or card message) sent as it is, signed.
func (c *chat) message(webhook string, text string, raw map[string]any, now time.Time) (string, []byte, error) {
	var body map[string]any
	switch {
	case raw != nil:
		body = raw
	case c.kind == config.TypeFeishu:
		body = map[string]any{"msg_type": "text", "content": map[string]any{"text": text}}
	case c.kind == config.TypeSlack:
		body = map[string]any{"text": text}
	default: // dingtalk, wecom
		body = map[string]any{"msgtype": "text", "text": map[string]any{"content": text}}
	}
	if c.secret != "" {
		switch c.kind {
		case config.TypeDingTalk:
			ts := now.UnixMilli()
			u, err := url.Parse(webhook)
			if err != nil {
				return "", nil, fmt.Errorf("the webhook URL does not parse")
			}
			q := u.Query()
			q.Set("timestamp", strconv.FormatInt(ts, 10))
			q.Set("sign", DingTalkSign(ts, c.secret))
			u.RawQuery = q.Encode()
			webhook = u.String()
		case config.TypeFeishu:
			ts := now.Unix()
			body["timestamp"] = strconv.FormatInt(ts, 10)
			body["sign"] = FeishuSign(ts, c.secret)
		}
	}
	b, err := json.Marshal(body)
	return webhook, b, err
}

// Vendor codes that mean "too many messages, try later"; every other
// non-zero code is permanent (a bad signature, a keyword missing, a robot
// removed), so the event goes to the dead-letter queue at once.
var chatRetryCodes = map[string][]int64{
	config.TypeDingTalk: {-1, 130101}, // system busy; sending too fast
	config.TypeWeCom:    {-1, 45009},  // system busy; API frequency out of limit
	config.TypeFeishu:   {11232},      // frequency limited
}

// check reads a 2xx answer of the vendor: nil when the message was taken.
func (c *chat) check(body []byte) error {
	if c.kind == config.TypeSlack {
		return nil // Slack answers errors with 4xx/5xx statuses
	}
	var r struct {
		ErrCode    *int64 `json:"errcode"`
		ErrMsg     string `json:"errmsg"`
		Code       *int64 `json:"code"`
		Msg        string `json:"msg"`
		StatusCode *int64 `json:"StatusCode"`
		StatusMsg  string `json:"StatusMessage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s answered 2xx with a body that is not JSON: %s", c.kind, excerpt(body))
	}
	code, msg := int64(0), ""
	switch {
	case r.ErrCode != nil:
		code, msg = *r.ErrCode, r.ErrMsg
	case r.Code != nil:
		code, msg = *r.Code, r.Msg
	case r.StatusCode != nil:
		code, msg = *r.StatusCode, r.StatusMsg
	}
	if code == 0 {
		return nil
	}
	err := fmt.Errorf("%s robot refused the message: code %d: %s", c.kind, code, strings.TrimSpace(msg))
	if slices.Contains(chatRetryCodes[c.kind], code) {
		return err
	}
	return sinks.Permanent(err)
}
