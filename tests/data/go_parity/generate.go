// Generates tests/data/go_parity/vectors.json: what the seed Go gateway reads
// as the gray id of each raw HTTP request, and its bucket.
//
// The seed's rule, as the gateway's middleware reads it:
//
//	grayID := r.Header.Get("X-Gray-ID")
//	if grayID == "" {
//		grayID = r.URL.Query().Get("gray_id")
//	}
//	bucket := fnv32a(grayID) % 100
//
// Each request is parsed by Go's own net/http (http.ReadRequest), so repeated
// headers, malformed escapes and ';' in the query are read as the gateway
// reads them. Run from the repository root (Debian: apt-get install golang):
//
//	go run tests/data/go_parity/generate.go > tests/data/go_parity/vectors.json
package main

import (
	"bufio"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"os"
	"runtime"
	"strings"
)

type vector struct {
	Name   string  `json:"name"`
	Raw    string  `json:"raw"`
	GrayID *string `json:"gray_id"`
	Bucket *uint32 `json:"bucket"`
	Go     string  `json:"go"`
}

func request(target string, headers ...string) string {
	raw := "GET " + target + " HTTP/1.1\r\nHost: shop.example.com\r\n"
	for _, header := range headers {
		raw += header + "\r\n"
	}
	return raw + "\r\n"
}

func main() {
	cases := []struct{ name, raw string }{
		{"header once", request("/", "X-Gray-ID: user-42")},
		{"header twice", request("/", "X-Gray-ID: user-11", "X-Gray-ID: user-5")},
		{"header three times", request("/", "X-Gray-ID: a", "X-Gray-ID: b", "X-Gray-ID: c")},
		{"header twice, first empty", request("/?gray_id=q", "X-Gray-ID:", "X-Gray-ID: user-5")},
		{"header with spaces", request("/", "X-Gray-ID:   user-7  ")},
		{"header and query", request("/?gray_id=from-query", "X-Gray-ID: from-header")},
		{"query only", request("/?gray_id=user-9")},
		{"query, malformed then good", request("/?gray_id=%ZZ&gray_id=u")},
		{"query, good then malformed", request("/?gray_id=u&gray_id=%ZZ")},
		{"query with semicolon", request("/?gray_id=a;b")},
		{"query, semicolon pair then good", request("/?gray_id=a;b&gray_id=c")},
		{"query, percent-encoded", request("/?gray_id=user%2D1")},
		{"query, plus is a space", request("/?gray_id=user+1")},
		{"query, empty first value", request("/?gray_id=&gray_id=u")},
		{"query, malformed name", request("/?gray%ZZid=x&gray_id=y")},
		{"query, encoded name", request("/?gray%5Fid=enc")},
		{"query, trailing percent", request("/?gray_id=u%")},
		{"query, no value", request("/?gray_id")},
		{"query, other parameters", request("/?a=1&gray_id=user-3&b=2")},
		{"no id at all", request("/")},
	}
	out := []vector{}
	for _, c := range cases {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.raw)))
		if err != nil {
			panic(c.name + ": " + err.Error())
		}
		grayID := r.Header.Get("X-Gray-ID")
		if grayID == "" {
			grayID = r.URL.Query().Get("gray_id")
		}
		v := vector{Name: c.name, Raw: c.raw, Go: runtime.Version()}
		if grayID != "" {
			h := fnv.New32a()
			h.Write([]byte(grayID))
			bucket := h.Sum32() % 100
			v.GrayID, v.Bucket = &grayID, &bucket
		}
		out = append(out, v)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(out); err != nil {
		panic(err)
	}
}
