//! Routing under `/forcedphot/`, DRF's `APIView.initial()` (content negotiation,
//! authentication, permissions, throttles) and the view handlers.

use super::body;
use super::json::{whole_second, J};
use super::paging::{self, Previous};
use super::radeclist;
use super::store::{task_json, Phase, Task, View};
use super::throttle::throttled_detail;
use super::validate::{self, errors_json, Errors, TaskFields};
use super::Shared;
use crate::http::{Request, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

const LIST_ALLOW: &str = "GET, POST, HEAD, OPTIONS";
const DETAIL_ALLOW: &str = "GET, PUT, PATCH, DELETE, HEAD, OPTIONS";
const TOKEN_ALLOW: &str = "POST, OPTIONS";
const LOGIN_LIMIT_MESSAGE: &str = "Too many failed login attempts from this address. Please wait a few minutes.";
const LOGIN_FAILURE_LIMIT: u32 = 10;

const DJANGO_404: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  \
                          <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n";
const APACHE_404: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n\
                          </head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n</body></html>\n";
const HTML: &str = "text/html; charset=utf-8";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Token,
    List,
    Detail(String),
    Result(String),
    /// Django's APPEND_SLASH redirect to the slashed path.
    Slash,
    NotFound,
}

impl Route {
    /// The meter's name for the route.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Token => "api-token-auth",
            Route::List => "queue-list",
            Route::Detail(_) => "queue-detail",
            Route::Result(_) => "result",
            Route::Slash | Route::NotFound => "other",
        }
    }
}

pub(crate) fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/forcedphot/") else { return Route::NotFound };
    let plain = |s: &str| !s.is_empty() && !s.contains(['/', '.']);
    match rest {
        "api-token-auth/" => Route::Token,
        "queue/" => Route::List,
        "api-token-auth" | "queue" => Route::Slash,
        _ => {
            if let Some(r) = rest.strip_prefix("queue/") {
                match r.strip_suffix('/') {
                    Some(pk) if plain(pk) => Route::Detail(pk.to_string()),
                    None if plain(r) => Route::Slash,
                    _ => Route::NotFound,
                }
            } else if let Some(f) = rest.strip_prefix("static/results/") {
                if f.is_empty() || f.contains('/') {
                    Route::NotFound
                } else {
                    Route::Result(f.to_string())
                }
            } else {
                Route::NotFound
            }
        }
    }
}

pub(crate) fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn json(status: u16, j: &J) -> Response {
    Response::new(status, "application/json", j.render().into_bytes())
}

fn detail(status: u16, msg: &str) -> Response {
    json(status, &J::obj(vec![("detail", J::str(msg))]))
}

fn html(status: u16, body: &str) -> Response {
    Response::new(status, HTML, body.as_bytes().to_vec())
}

/// The `http://host:port` the client addressed (Django builds absolute URLs from `Host`);
/// hosts outside ALLOWED_HOSTS get Django's DisallowedHost answer.
fn origin(req: &Request, sh: &Shared) -> Result<String, Response> {
    let Some(h) = req.header("host") else { return Ok(format!("http://{}", sh.connect_addr())) };
    let name = if h.starts_with('[') {
        h.split(']').next().map(|s| format!("{s}]"))
    } else {
        h.split(':').next().map(str::to_string)
    };
    match name.as_deref() {
        Some("127.0.0.1" | "localhost" | "[::1]") => Ok(format!("http://{h}")),
        _ => Err(html(400, "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n")),
    }
}

/// Answers one request (faults and latency are applied by the caller).
pub(crate) fn respond(sh: &Shared, req: &Request, peer: IpAddr) -> Response {
    let origin = match origin(req, sh) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match route(&req.path) {
        Route::NotFound => html(404, DJANGO_404),
        Route::Slash => {
            let q = if req.query.is_empty() { String::new() } else { format!("?{}", req.query) };
            Response::new(301, HTML, Vec::new()).with_header("Location", format!("{}/{q}", req.path))
        }
        Route::Result(name) => result_file(sh, req, &name),
        r => api(sh, req, peer, &r, &origin),
    }
}

fn result_file(sh: &Shared, req: &Request, name: &str) -> Response {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return html(405, "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>405 Method Not Allowed</title>\n</head><body>\n<h1>Method Not Allowed</h1>\n</body></html>\n")
            .with_header("Allow", "GET, HEAD, OPTIONS");
    }
    let id = name.strip_prefix("job").and_then(|s| s.strip_suffix(".txt")).and_then(|d| d.parse::<u64>().ok());
    let st = sh.state.lock().unwrap();
    let now = Instant::now();
    let found = id
        .filter(|id| name == format!("job{id:05}.txt"))
        .and_then(|id| st.store.tasks.get(&id))
        .and_then(|t| t.result_file(now, &sh.timing).map(|text| (t, text)));
    match found {
        Some((t, text)) => {
            let modified = t.created_wall + sh.timing.queue + sh.timing.run;
            Response::new(200, "text/plain", text.to_vec())
                .with_header("Last-Modified", httpdate::fmt_http_date(modified))
        }
        None => html(404, APACHE_404),
    }
}

/// Who is asking: a configured user (index) or nobody.
type Caller = Option<usize>;

fn api(sh: &Shared, req: &Request, peer: IpAddr, r: &Route, origin: &str) -> Response {
    let allow = match r {
        Route::Token => TOKEN_ALLOW,
        Route::List => LIST_ALLOW,
        _ => DETAIL_ALLOW,
    };
    // DRF's finalize_response: every answer of an API view carries these.
    let resp = api_inner(sh, req, peer, r, origin).with_header("Allow", allow);
    if *r == Route::Token {
        resp
    } else {
        resp.with_header("Vary", "Accept")
    }
}

fn accepts_json(req: &Request) -> bool {
    let Some(a) = req.header("accept") else { return true };
    a.trim().is_empty()
        || a.split(',').any(|r| {
            let mt = r.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            matches!(mt.as_str(), "*/*" | "application/*" | "application/json")
        })
}

fn api_inner(sh: &Shared, req: &Request, peer: IpAddr, r: &Route, origin: &str) -> Response {
    if !accepts_json(req) {
        return detail(406, "Could not satisfy the request Accept header.");
    }
    let caller = match authenticate(sh, req, peer) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let method = req.method.as_str();
    if *r != Route::Token {
        let ident = caller.map_or_else(|| format!("ip:{peer}"), |u| format!("user:{}", u + 1));
        if !is_safe(method) {
            if caller.is_none() {
                return detail(401, "Authentication credentials were not provided.")
                    .with_header("WWW-Authenticate", "Basic realm=\"api\"");
            }
            sh.note_write(&ident, req.head_at);
        }
        if let Some(resp) = throttle(sh, &ident, method) {
            return resp;
        }
    }
    let base = format!("{origin}/forcedphot");
    match (r, method) {
        (Route::Token, "POST") => token(sh, req, peer),
        (Route::List, "GET" | "HEAD") => list(sh, req, caller, origin, &base),
        (Route::List, "POST") => create(sh, req, caller, &base),
        (Route::Detail(pk), "GET" | "HEAD") => retrieve(sh, req, caller, pk, &base),
        (Route::Detail(pk), "PUT" | "PATCH") => update(sh, req, caller, pk, &base, method == "PATCH"),
        (Route::Detail(pk), "DELETE") => destroy(sh, caller, pk),
        (_, "OPTIONS") => options(r),
        _ => detail(405, &format!("Method \"{method}\" not allowed.")),
    }
}

fn unauthorized(msg: &str) -> Response {
    detail(401, msg).with_header("WWW-Authenticate", "Basic realm=\"api\"")
}

/// DRF's Basic, Session and Token authenticators, in the order atlasserver lists them.
fn authenticate(sh: &Shared, req: &Request, peer: IpAddr) -> Result<Caller, Response> {
    let Some(header) = req.header("authorization") else { return Ok(None) };
    let parts: Vec<&str> = header.split_ascii_whitespace().collect();
    let users = &sh.cfg.users;
    match parts.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("basic") => {
            if parts.len() == 1 {
                return Err(unauthorized("Invalid basic header. No credentials provided."));
            }
            if parts.len() > 2 {
                return Err(unauthorized("Invalid basic header. Credentials string should not contain spaces."));
            }
            let decoded = STANDARD.decode(parts[1]).ok().map(|b| match String::from_utf8(b.clone()) {
                Ok(s) => s,
                Err(_) => b.iter().map(|&c| char::from(c)).collect(),
            });
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(unauthorized("Invalid basic header. Credentials not correctly base64 encoded."));
            };
            if sh.login_failures(peer, false) >= LOGIN_FAILURE_LIMIT {
                return Err(detail(429, LOGIN_LIMIT_MESSAGE));
            }
            match users.iter().position(|u| u.0 == user && u.1 == password) {
                Some(i) => Ok(Some(i)),
                None => {
                    if !user.is_empty() && !password.is_empty() {
                        sh.login_failures(peer, true);
                    }
                    Err(unauthorized("Invalid username/password."))
                }
            }
        }
        Some("token") => {
            if parts.len() == 1 {
                return Err(unauthorized("Invalid token header. No credentials provided."));
            }
            if parts.len() > 2 {
                return Err(unauthorized("Invalid token header. Token string should not contain spaces."));
            }
            users.iter().position(|u| u.2 == parts[1]).map(Some).ok_or_else(|| unauthorized("Invalid token."))
        }
        _ => Ok(None),
    }
}

/// `ForcedPhotRateThrottle`: writes and reads are separate scopes, keyed by user (or address).
fn throttle(sh: &Shared, ident: &str, method: &str) -> Option<Response> {
    let write = !is_safe(method);
    let (scope, num) = if write {
        ("forcephottasks", sh.cfg.write_rate_per_min)
    } else {
        ("forcephotread", sh.cfg.read_rate_per_min?)
    };
    let window = sh.scaled(Duration::from_secs(60));
    let now = Instant::now();
    let verdict = sh.state.lock().unwrap().throttle.allow(ident, scope, num, window, now);
    let wait = verdict.err()?;
    let (n, msg) = throttled_detail(wait);
    sh.note_throttled(ident, write, now, n);
    let resp = detail(429, &msg);
    Some(if n > 0 { resp.with_header("Retry-After", n.to_string()) } else { resp })
}

fn token(sh: &Shared, req: &Request, peer: IpAddr) -> Response {
    let row = match body::parse(req) {
        Ok(r) => r,
        Err((status, msg)) => return detail(status, &msg),
    };
    if sh.login_failures(peer, false) >= LOGIN_FAILURE_LIMIT {
        return detail(429, LOGIN_LIMIT_MESSAGE);
    }
    let (user, password) = match validate::credentials(&row) {
        Ok(c) => c,
        Err(e) => return json(400, &errors_json(&e)),
    };
    match sh.cfg.users.iter().find(|u| u.0 == user && u.1 == password) {
        Some(u) => json(200, &J::obj(vec![("token", J::str(u.2.clone()))])),
        None => {
            sh.login_failures(peer, true);
            json(
                400,
                &J::obj(vec![(
                    "non_field_errors",
                    J::Arr(vec![J::str("Unable to log in with provided credentials.")]),
                )]),
            )
        }
    }
}

fn options(r: &Route) -> Response {
    let strs = |v: &[&str]| J::Arr(v.iter().map(|s| J::str(*s)).collect());
    let (name, description, renders, parses) = match r {
        Route::Token => (
            "Obtain Auth Token",
            "",
            strs(&["application/json"]),
            strs(&["application/x-www-form-urlencoded", "multipart/form-data", "application/json"]),
        ),
        r => (
            if *r == Route::List { "Force Phot Task List" } else { "Force Phot Task Instance" },
            "API endpoint that allows force.sh tasks to be created and deleted.",
            strs(&["application/json", "text/html", "text/html"]),
            strs(&["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]),
        ),
    };
    json(
        200,
        &J::obj(vec![
            ("name", J::str(name)),
            ("description", J::str(description)),
            ("renders", renders),
            ("parses", parses),
        ]),
    )
}

/// Last value of a query parameter (QueryDict `get`).
fn query_param(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query.as_bytes()).filter(|(k, _)| k == name).last().map(|(_, v)| v.into_owned())
}

/// DRF's `replace_query_param` / `remove_query_param`: keys sorted, values kept.
fn with_query_param(url_path: &str, query: &str, key: &str, value: Option<&str>) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, vals)) => vals.push(v.into_owned()),
            None => groups.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    groups.retain(|(k, _)| k != key);
    if let Some(v) = value {
        groups.push((key.to_string(), vec![v.to_string()]));
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, vals) in &groups {
        for v in vals {
            ser.append_pair(k, v);
        }
    }
    let q = ser.finish();
    if q.is_empty() {
        url_path.to_string()
    } else {
        format!("{url_path}?{q}")
    }
}

fn etag_for(body: &str, target: &str) -> String {
    let h = format!("{target}\u{1f}{body}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{h:016x}\"")
}

/// A JSON answer with an entity tag, or 304 when the client already has it.
fn tagged(req: &Request, status: u16, j: &J) -> Response {
    let body = j.render();
    let tag = etag_for(&body, &req.target);
    if req.header("if-none-match") == Some(tag.as_str()) {
        return Response::new(304, "application/json", Vec::new()).with_header("ETag", tag);
    }
    Response::new(status, "application/json", body.into_bytes()).with_header("ETag", tag)
}

/// DRF `_positive_int(strict=True, cutoff=100)`, falling back to the page size of 6.
fn page_size(req: &Request) -> usize {
    query_param(req, "pagesize")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&n| n > 0)
        .map_or(6, |n| n.min(100) as usize)
}

fn list(sh: &Shared, req: &Request, caller: Caller, origin: &str, base: &str) -> Response {
    let Some(user) = caller else { return detail(403, "You do not have permission to perform this action.") };
    let started = query_param(req, "started").and_then(|v| match v.as_str() {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    });
    // OrderingFilter: the first valid term decides (ids and timestamps sort alike here).
    let descending = query_param(req, "ordering")
        .and_then(|o| {
            o.split(',')
                .map(str::trim)
                .find(|t| matches!(t.trim_start_matches('-'), "id" | "timestamp"))
                .map(|t| t.starts_with('-'))
        })
        .unwrap_or(true);
    let cursor = match query_param(req, "cursor") {
        Some(c) => match paging::decode(&c) {
            Some(c) => Some(c),
            None => return detail(404, "Invalid cursor"),
        },
        None => None,
    };
    let size = page_size(req);
    let now = Instant::now();
    let st = sh.state.lock().unwrap();
    let store = &st.store;
    let mut ids: Vec<u64> = store
        .tasks
        .values()
        .filter(|t| t.user == user && t.live())
        .filter(|t| started.is_none_or(|s| s == (t.phase(now, &sh.timing) != Phase::Queued)))
        .map(|t| t.id)
        .collect();
    if descending {
        ids.reverse();
    }
    let page = paging::paginate(&ids, descending, size, cursor.as_ref());
    let unfinished = store.unfinished(now, &sh.timing);
    let view = View { base, users: &sh.cfg.users, requester: caller, now, timing: &sh.timing, unfinished: &unfinished };
    let results: Vec<J> = page.ids.iter().filter_map(|id| store.tasks.get(id)).map(|t| task_json(t, &view)).collect();
    drop(st);
    let here = format!("{origin}{}", req.path);
    let link = |c: &paging::Cursor| J::str(with_query_param(&here, &req.query, "cursor", Some(&paging::encode(c))));
    let previous = match &page.previous {
        None => J::Null,
        Some(Previous::Top) => J::str(with_query_param(&here, &req.query, "cursor", None)),
        Some(Previous::Cursor(c)) => link(c),
    };
    let body = J::obj(vec![
        ("next", page.next.as_ref().map_or(J::Null, link)),
        ("previous", previous),
        ("pagefirsttaskposition", J::Int(page.first_position as i64)),
        ("taskcount", J::Int(ids.len() as i64)),
        ("results", J::Arr(results)),
    ]);
    tagged(req, 200, &body)
}

fn not_found() -> Response {
    detail(404, "No Task matches the given query.")
}

/// `get_object()`: any existing row, whoever owns it (Django matches `"007"` to 7).
fn lookup(sh: &Shared, pk: &str) -> Option<Task> {
    let id: u64 = pk.trim_start_matches('+').parse().ok()?;
    sh.state.lock().unwrap().store.tasks.get(&id).filter(|t| t.exists()).cloned()
}

fn one_task(sh: &Shared, t: &Task, caller: Caller, base: &str) -> J {
    let now = Instant::now();
    let unfinished = sh.state.lock().unwrap().store.unfinished(now, &sh.timing);
    let view = View { base, users: &sh.cfg.users, requester: caller, now, timing: &sh.timing, unfinished: &unfinished };
    task_json(t, &view)
}

fn retrieve(sh: &Shared, req: &Request, caller: Caller, pk: &str, base: &str) -> Response {
    let Some(t) = lookup(sh, pk) else { return not_found() };
    if t.archived {
        return html(404, "Page not found");
    }
    tagged(req, 200, &one_task(sh, &t, caller, base))
}

fn owner_only(t: &Task, caller: Caller) -> Option<Response> {
    (caller != Some(t.user)).then(|| detail(403, "You must be the owner of this object."))
}

fn destroy(sh: &Shared, caller: Caller, pk: &str) -> Response {
    let Some(t) = lookup(sh, pk) else { return not_found() };
    if let Some(refused) = owner_only(&t, caller) {
        return refused;
    }
    let now = Instant::now();
    let mut st = sh.state.lock().unwrap();
    if let Some(task) = st.store.tasks.get_mut(&t.id) {
        if task.phase(now, &sh.timing) == Phase::Finished {
            task.archived = true;
        } else {
            task.cancelled = true;
        }
        task.deleted = true;
    }
    Response::new(204, "application/json", Vec::new())
}

fn update(sh: &Shared, req: &Request, caller: Caller, pk: &str, base: &str, partial: bool) -> Response {
    let Some(t) = lookup(sh, pk) else { return not_found() };
    if let Some(refused) = owner_only(&t, caller) {
        return refused;
    }
    let row = match body::parse(req) {
        Ok(r) => r,
        Err((status, msg)) => return detail(status, &msg),
    };
    let attrs = match validate::validate_row(&row, Some(&t.fields), partial, SystemTime::now()) {
        Ok(a) => a,
        Err(e) => return json(400, &errors_json(&e)),
    };
    let updated = {
        let mut st = sh.state.lock().unwrap();
        let Some(task) = st.store.tasks.get_mut(&t.id) else { return not_found() };
        attrs.apply(&mut task.fields);
        task.clone()
    };
    json(200, &one_task(sh, &updated, caller, base))
}

fn too_many(queued: usize, requested: usize, max: usize) -> Response {
    let msg = format!("ERROR: You have too many queued tasks ({queued} queued + {requested} requested > {max}).");
    json(400, &J::obj(vec![("non_field_errors", J::str(msg))]))
}

fn create(sh: &Shared, req: &Request, caller: Caller, base: &str) -> Response {
    let Some(user) = caller else { return detail(403, "You do not have permission to perform this action.") };
    let row = match body::parse(req) {
        Ok(r) => r,
        Err((status, msg)) => return detail(status, &msg),
    };
    let wall = SystemTime::now();
    let many = row.not_a_dict.is_none() && row.get("radeclist").is_some();
    let rows = if many {
        match radeclist::split_radeclist(&row, wall) {
            Ok(rows) => rows,
            Err(e) => return json(400, &errors_json(&e)),
        }
    } else {
        vec![row]
    };
    let now = Instant::now();
    let queued = sh.state.lock().unwrap().store.unstarted(user, now, &sh.timing);
    if queued + rows.len() > sh.cfg.max_queued {
        return too_many(queued, rows.len(), sh.cfg.max_queued);
    }
    let checked: Vec<Result<validate::Attrs, Errors>> =
        rows.iter().map(|r| validate::validate_row(r, None, false, wall)).collect();
    if checked.iter().any(Result::is_err) {
        if !many {
            let e = checked.into_iter().find_map(Result::err).unwrap_or_default();
            return json(400, &errors_json(&e));
        }
        let per_row = checked.iter().map(|c| c.as_ref().err().map_or(J::Obj(Vec::new()), errors_json)).collect();
        return json(400, &J::Arr(per_row));
    }
    let mut created = Vec::new();
    {
        let mut st = sh.state.lock().unwrap();
        let before = st.store.unstarted(user, now, &sh.timing);
        for (i, attrs) in checked.into_iter().flatten().enumerate() {
            let mut fields = TaskFields::defaults(wall);
            attrs.apply(&mut fields);
            if let Some(name) = &fields.mpc_name {
                fields.mpc_name =
                    Some(name.trim_matches(&[' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}', '\u{a0}'][..]).to_string());
            }
            st.store.next_id += 1;
            let id = st.store.next_id;
            let outcome = st.store.outcome_for(&fields);
            let task = Task {
                id,
                user,
                fields,
                created: now,
                timestamp: whole_second(wall),
                created_wall: wall,
                outcome,
                userqueuedtasks_on_submit: (before + i) as u64,
                archived: false,
                cancelled: false,
                deleted: false,
            };
            st.store.tasks.insert(id, task.clone());
            created.push(task);
        }
        let queued_now = st.store.unstarted(user, now, &sh.timing);
        drop(st);
        sh.note_queued(queued_now);
    }
    if many {
        let items = created.iter().map(|t| one_task(sh, t, caller, base)).collect();
        return json(201, &J::Arr(items));
    }
    let j = one_task(sh, &created[0], caller, base);
    let location = format!("{base}/queue/{}/", created[0].id);
    json(201, &j).with_header("Location", location)
}
