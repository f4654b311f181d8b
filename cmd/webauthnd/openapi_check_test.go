package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// openAPIFile is the document that every response of these tests is checked against: the one
// the server embeds and serves at /webauthn/openapi.json.
const openAPIFile = "../../httpapi/openapi.json"

// unroutedResponses are the answers a request that matches no operation of the document may
// get, named by their components/responses entry: any path and method is refused with 400
// private_key_refused before routing, an unknown path is 404 and a known path with another
// method is 405.
var unroutedResponses = map[int]string{
	http.StatusBadRequest:       "PrivateKeyRefused",
	http.StatusNotFound:         "NotFound",
	http.StatusMethodNotAllowed: "MethodNotAllowed",
}

// openAPI is the document, loaded once, with its router.
var openAPI struct {
	once   sync.Once
	router routers.Router
	// unrouted is a stand-in operation for requests the document has no operation for; its
	// responses are unroutedResponses.
	unrouted *openapi3.Operation
	spec     *openapi3.T
	err      error
}

// loadOpenAPI reads and validates the document and builds its router. The document's servers
// are dropped so that operations match on the path alone, whatever host and port the test
// server listens on.
func loadOpenAPI() {
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIFile)
	if err != nil {
		openAPI.err = err
		return
	}
	if err := doc.Validate(context.Background()); err != nil {
		openAPI.err = err
		return
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		openAPI.err = err
		return
	}
	var opts []openapi3.NewResponsesOption
	for status, name := range unroutedResponses {
		ref := doc.Components.Responses[name]
		if ref == nil {
			openAPI.err = &missingResponseError{name: name}
			return
		}
		opts = append(opts, openapi3.WithStatus(status, ref))
	}
	openAPI.router = router
	openAPI.spec = doc
	openAPI.unrouted = &openapi3.Operation{OperationID: "unrouted", Responses: openapi3.NewResponses(opts...)}
}

type missingResponseError struct{ name string }

func (e *missingResponseError) Error() string {
	return "components/responses/" + e.name + " is missing from " + openAPIFile
}

// checkOpenAPI checks a response against the OpenAPI document: its status must be one the
// operation lists, and its headers and JSON body must match that response's schema. A request
// that matches no operation of the document fails unless it was answered with one of
// unroutedResponses (404 for an unknown path, 405 for another method, 400 for a privateKey
// header), whose body is checked too. body is the response body, already read. It is safe to
// call from several goroutines of one test, and reports with t.Errorf only.
func checkOpenAPI(t *testing.T, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	// The passkey demo (/ and /demo/) is a relying party's page, left out of the API document
	// on purpose (httpapi.TestDemoRoutesStayOutOfTheAPI); its own tests check its answers.
	if p := req.URL.Path; p == "/" || strings.HasPrefix(p, "/demo/") {
		return
	}
	openAPI.once.Do(loadOpenAPI)
	if openAPI.err != nil {
		t.Errorf("OpenAPI: cannot load %s: %v", openAPIFile, openAPI.err)
		return
	}
	// The server routes on the path as sent, percent-encoded (a '/' inside a DID stays in its
	// parameter): so does this check.
	if escaped := req.URL.EscapedPath(); escaped != req.URL.Path {
		u := *req.URL
		u.Path, u.RawPath = escaped, ""
		r2 := *req
		r2.URL = &u
		req = &r2
	}
	route, pathParams, err := openAPI.router.FindRoute(req)
	if err != nil {
		if _, ok := unroutedResponses[res.StatusCode]; !ok {
			t.Errorf("OpenAPI: %s %s answered %d, but the document has no such operation: %v\nbody: %s",
				req.Method, req.URL.Path, res.StatusCode, err, body)
			return
		}
		route = &routers.Route{Spec: openAPI.spec, Path: req.URL.Path, Method: req.Method, Operation: openAPI.unrouted}
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: res.StatusCode,
		Header: res.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			// The message names the failing member; the whole body follows it.
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("OpenAPI: %s %s answered %d, which does not match %s (operation %s): %v\nbody: %s",
			req.Method, req.URL.Path, res.StatusCode, openAPIFile, route.Operation.OperationID, err, body)
	}
}
