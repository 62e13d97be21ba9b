package approvals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// page is one parsed page: the layout with the page's content.
type page struct{ t *template.Template }

// pageNames are the pages under templates/, each rendered in layout.html.
var pageNames = []string{"login", "list", "detail", "error"}

func parsePages() (map[string]*page, error) {
	funcs := template.FuncMap{
		"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"masked": func(prefix string) string { return prefix + "_****" },
		"join":   strings.Join,
	}
	pages := make(map[string]*page, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("approvals web: parse %s template: %w", name, err)
		}
		pages[name] = &page{t: t}
	}
	if _, err := fs.Stat(assets, "static/style.css"); err != nil {
		return nil, fmt.Errorf("approvals web: %w", err)
	}
	return pages, nil
}

// view is what every page gets.
type view struct {
	Title     string
	User      *store.Principal
	CSRF      string
	Notice    string
	Error     string
	RequestID string
	Body      any
}

// render writes a page. The page is rendered into a buffer first, so a
// template failure is a clean 500, never half a page.
func (w *Web) render(rw http.ResponseWriter, r *http.Request, status int, name string, v view) {
	var buf bytes.Buffer
	if err := w.pages[name].t.Execute(&buf, v); err != nil {
		w.log.Error("render approvals page", "page", name, "request_id", v.RequestID, "err", err)
		http.Error(rw, "Internal error (request id "+v.RequestID+")", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = rw.Write(buf.Bytes())
	}
}

// errorPage answers a refused or failed request with a page saying why and
// what to do. Internal errors show only the request id.
func (w *Web) errorPage(rw http.ResponseWriter, r *http.Request, reqID string, s *signedIn, err error) {
	status, _, public := classify(err)
	msg := err.Error()
	if !public {
		w.log.Error("approvals web", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "Something went wrong on our side. Try again; if it persists, give the request id " + reqID + " to a workspace admin."
	}
	v := view{Title: http.StatusText(status), Error: msg, RequestID: reqID, Body: errorBody{Status: status, SignIn: status == http.StatusUnauthorized}}
	if s != nil {
		v.User, v.CSRF = &s.p, s.sess.csrf
	}
	w.render(rw, r, status, "error", v)
}

type errorBody struct {
	Status int
	SignIn bool
}

// loginBody is the sign-in form.
type loginBody struct {
	Token string
	Next  string
}

// loginPage shows the sign-in form with a fresh token that a cookie
// carries too (the form has no session to bind a CSRF token to yet).
func (w *Web) loginPage(rw http.ResponseWriter, r *http.Request, reqID string) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, err := w.session(r); err == nil {
		http.Redirect(rw, r, next, http.StatusSeeOther)
		return
	}
	w.showLogin(rw, r, reqID, http.StatusOK, next, "")
}

func (w *Web) showLogin(rw http.ResponseWriter, r *http.Request, reqID string, status int, next, msg string) {
	token, err := randomToken()
	if err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	setCookie(rw, r, loginCookie, token, "/approvals/login", time.Hour)
	w.render(rw, r, status, "login", view{Title: "Sign in", Error: msg, RequestID: reqID, Body: loginBody{Token: token, Next: next}})
}

// signIn checks the sign-in form: same origin, the form's token, then a
// user key. It starts a session bound to the key and redirects.
func (w *Web) signIn(rw http.ResponseWriter, r *http.Request, reqID string) {
	if err := w.sameOrigin(r); err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	if err := parseForm(rw, r); err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	if err := onlyFields(r.PostForm, "sign-in", "key", "csrf", "next"); err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	token, terr := single(r.PostForm, "csrf")
	c, cerr := r.Cookie(loginCookie)
	if terr != nil || cerr != nil || !tokensEqual(token, c.Value) {
		w.errorPage(rw, r, reqID, nil, fmt.Errorf("%w: the sign-in form expired or was not sent from this site; reload the sign-in page (cookies must be on)", ErrForbidden))
		return
	}
	next, err := single(r.PostForm, "next")
	if err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	next = safeNext(next)
	key, err := single(r.PostForm, "key")
	if err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	key = strings.TrimSpace(key)
	if key == "" {
		w.showLogin(rw, r, reqID, http.StatusBadRequest, next, "Enter your API key.")
		return
	}
	p, err := w.authenticate(r, key, store.SourceUI)
	if err == nil {
		err = w.mayRead(r.Context(), p)
	}
	if err != nil {
		status, _, public := classify(err)
		if !public {
			w.errorPage(rw, r, reqID, nil, err)
			return
		}
		msg := "That key is invalid, revoked or expired."
		if errors.Is(err, ErrForbidden) {
			msg = strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": ")
		}
		w.showLogin(rw, r, reqID, status, next, msg)
		return
	}
	id, sess, err := w.sessions.create(p.KeyID)
	if err != nil {
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	w.audit(r, actorEvent(p, store.SourceUI, "approvals.sign_in", store.DecisionAllowed, "signed in to the approval queue"))
	setCookie(rw, r, sessionCookie, id, "/approvals", time.Until(sess.expires))
	clearCookie(rw, r, loginCookie, "/approvals/login")
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

// signOut ends the session.
func (w *Web) signOut(rw http.ResponseWriter, r *http.Request, s *signedIn) {
	if err := onlyFields(r.PostForm, "sign-out", "csrf"); err != nil {
		w.errorPage(rw, r, s.reqID, s, err)
		return
	}
	w.sessions.end(s.id)
	w.audit(r, actorEvent(s.p, store.SourceUI, "approvals.sign_out", store.DecisionAllowed, "signed out of the approval queue"))
	clearCookie(rw, r, sessionCookie, "/approvals")
	http.Redirect(rw, r, "/approvals/login", http.StatusSeeOther)
}

// listBody is the list page.
type listBody struct {
	Query     listQuery
	Rows      []store.Approval
	States    []string
	Ages      []age
	Tools     []string
	Members   []store.Member
	Limit     int
	Truncated bool
	Now       time.Time
}

// listPage lists approvals with the filters of the query.
func (w *Web) listPage(rw http.ResponseWriter, r *http.Request, s *signedIn) {
	v := view{Title: "Approvals", User: &s.p, CSRF: s.sess.csrf, RequestID: s.reqID}
	body := listBody{States: States, Ages: ages, Tools: w.tools, Limit: webLimit, Now: w.now()}
	members, err := w.queue.store.Members(r.Context(), s.p.WorkspaceID)
	if err != nil {
		w.errorPage(rw, r, s.reqID, s, err)
		return
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	body.Members = members
	lq, err := w.parseList(r.Context(), s.p.WorkspaceID, r.URL.Query(), false)
	body.Query = lq
	status := http.StatusOK
	if err != nil {
		st, _, public := classify(err)
		if !public {
			w.errorPage(rw, r, s.reqID, s, err)
			return
		}
		status, v.Error = st, "Filter not applied: "+err.Error()
	} else {
		rows, err := w.list(r.Context(), lq)
		if err != nil {
			w.errorPage(rw, r, s.reqID, s, err)
			return
		}
		body.Rows, body.Truncated = rows, len(rows) >= webLimit
	}
	v.Body = body
	w.render(rw, r, status, "list", v)
}

// detailBody is the detail page.
type detailBody struct {
	A        store.Approval
	Args     string
	Impact   impact
	Pending  bool
	Expired  bool
	CanAct   bool
	WhyNot   string
	Comment  string
	Outcome  string
	Decision string
}

// detailPage shows one approval with its impact, and the decision form
// when the viewer may decide it.
func (w *Web) detailPage(rw http.ResponseWriter, r *http.Request, s *signedIn, id string, status int, formErr error, comment string) {
	v := view{Title: "Approval " + id, User: &s.p, CSRF: s.sess.csrf, RequestID: s.reqID}
	if err := checkID(id); err != nil {
		w.errorPage(rw, r, s.reqID, s, err)
		return
	}
	a, err := w.queue.store.GetApproval(r.Context(), s.p.WorkspaceID, id)
	if err != nil {
		w.errorPage(rw, r, s.reqID, s, notFound(id, err))
		return
	}
	body := detailBody{A: a, Args: pretty(a.Args), Comment: comment, Outcome: prettyText(a.Outcome)}
	body.Impact = w.impact(r, s.reqID, a)
	body.Pending = a.State == store.ApprovalPending
	body.Expired = body.Pending && !w.now().Before(a.ExpiresAt)
	if body.Pending && !body.Expired {
		switch err := w.queue.CanDecide(r.Context(), s.p, store.SourceUI, a); {
		case err == nil:
			body.CanAct = true
		case errors.Is(err, ErrForbidden):
			body.WhyNot = strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": ")
		default:
			w.log.Error("check approvals.decide", "request_id", s.reqID, "err", err)
			body.WhyNot = "Your permission to decide could not be checked (request id " + s.reqID + ")."
		}
	}
	switch r.URL.Query().Get("done") {
	case "approved":
		v.Notice = "You approved it. The call ran: see the outcome below."
	case "rejected":
		v.Notice = "You rejected it. The call will not run."
	}
	if formErr != nil {
		st, _, public := classify(formErr)
		status = st
		v.Notice = ""
		v.Error = formErr.Error()
		if !public {
			w.log.Error("approvals web decision", "request_id", s.reqID, "approval", id, "err", formErr)
			v.Error = "The decision could not be completed (request id " + s.reqID + "). Check the state below and try again."
		}
	}
	v.Body = body
	w.render(rw, r, status, "detail", v)
}

// decidePage handles the decision form: approve (and run) or reject.
func (w *Web) decidePage(rw http.ResponseWriter, r *http.Request, s *signedIn, id string) {
	if err := checkID(id); err != nil {
		w.errorPage(rw, r, s.reqID, s, err)
		return
	}
	if err := onlyFields(r.PostForm, "decision", "csrf", "decision", "comment"); err != nil {
		w.detailPage(rw, r, s, id, 0, err, "")
		return
	}
	comment, err := single(r.PostForm, "comment")
	if err == nil {
		err = checkComment(comment)
	}
	if err != nil {
		w.detailPage(rw, r, s, id, 0, err, "")
		return
	}
	decision, err := single(r.PostForm, "decision")
	if err == nil && decision != "approve" && decision != "reject" {
		err = invalidf("decision must be approve or reject")
	}
	if err != nil {
		w.detailPage(rw, r, s, id, 0, err, comment)
		return
	}
	if _, err := w.decide(r.Context(), s.p, store.SourceUI, id, decision == "approve", comment); err != nil {
		w.detailPage(rw, r, s, id, 0, err, comment)
		return
	}
	http.Redirect(rw, r, "/approvals/"+id+"?done="+decision+"d", http.StatusSeeOther)
}

// pretty indents JSON for reading; other text is returned as is.
func pretty(data []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, data, "", "  ") != nil {
		return string(data)
	}
	return buf.String()
}

func prettyText(s string) string {
	if s == "" {
		return ""
	}
	return pretty([]byte(s))
}
