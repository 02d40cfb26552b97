//! One pass over an answer's JSON bytes that finds the hidden components without building a
//! tree: each object is scanned once; when it closes and turns out to be a component (string
//! `type` and `namespace`, object `props`) whose `props.id` a failed rule covers, its byte
//! range is recorded. The answer is then copied with those ranges replaced — by `null` (which
//! renders as nothing, in a list of children or anywhere else) or by the rule's placeholder.
//! Everything the rules do not touch is copied byte for byte. Malformed JSON is an error (the
//! caller refuses the answer rather than pass it on unfiltered).
//!
//! In a callback answer the scan also records what [`super::prune`] must read as a parsed
//! value: the top-level members that carry values for other components than the outputs
//! (`sideUpdate`, `progress`, `progressDefault`), and every `Patch` object (one with a
//! `__dash_patch_update` member, in any spelling of that key), whose operations name children
//! by position rather than by id.

use serde_json::Value as Json;

use super::hidden::{Hidden, PruneError, replacement};

/// Deeper nesting than this is refused (Dash layouts are a few dozen levels deep).
const MAX_DEPTH: usize = 512;

/// A byte range of the input and what replaces it.
#[derive(Debug)]
pub struct Splice {
    pub start: usize,
    pub end: usize,
    pub with: String,
}

/// What kind of answer is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A layout (`_dash-layout`, a `validation_layout`): only components matter.
    Layout,
    /// A `_dash-update-component` answer: also its side members and `Patch` objects.
    Callback,
}

/// A top-level member of a callback answer that carries values for other components than
/// the callback's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// `sideUpdate`: `{id: {prop: value}}`, from `set_props`.
    SideUpdate,
    /// `progress`, `progressDefault`: `{"id.prop": value}`, a background callback's progress
    /// outputs.
    Progress,
}

/// The key of a `Patch` object (`dash.Patch` serialises as `{"__dash_patch_update": …,
/// "operations": [...]}`).
pub const PATCH_KEY: &str = "__dash_patch_update";

/// What scanning found.
pub struct Found {
    /// Hidden components outside the members and patches below, in order.
    pub splices: Vec<Splice>,
    /// The root value's range.
    pub root: (usize, usize),
    /// Value ranges of the root object's side members (callback answers only).
    pub members: Vec<(Member, (usize, usize))>,
    /// Ranges of the outermost `Patch` objects (callback answers only).
    pub patches: Vec<(usize, usize)>,
}

struct Scan<'a, 'h> {
    b: &'a [u8],
    i: usize,
    hidden: &'h Hidden,
    kind: Kind,
    splices: Vec<Splice>,
    members: Vec<(Member, (usize, usize))>,
    patches: Vec<(usize, usize)>,
}

const fn bad(why: &'static str) -> PruneError {
    PruneError(why)
}

/// Members of an object that matter.
#[derive(Default)]
struct ObjectInfo {
    id: Option<(usize, usize)>,
}

impl<'a> Scan<'a, '_> {
    #[inline(always)]
    fn ws(&mut self) {
        // Compact JSON has none: one comparison in the common case.
        while let Some(&c) = self.b.get(self.i) {
            if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string starting at `self.i` (the quote); returns the range of its contents and
    /// whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), PruneError> {
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            j = self.next_special(j)?;
            match self.b.get(j) {
                Some(b'"') => {
                    self.i = j + 1;
                    return Ok((start, j, escaped));
                }
                Some(_) => {
                    escaped = true;
                    j += 2;
                }
                None => return Err(bad("unterminated string")),
            }
        }
    }

    /// The position of the next `"` or `\` at or after `j`. Most strings in a layout are
    /// short keys and values: eight bytes at a time in a register first, a vectorised search
    /// for the long ones.
    #[inline(always)]
    fn next_special(&self, mut j: usize) -> Result<usize, PruneError> {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
        const QUOTE: u64 = u64::from_ne_bytes([b'"'; 8]);
        const BACKSLASH: u64 = u64::from_ne_bytes([b'\\'; 8]);
        for _ in 0..4 {
            let Some(chunk) = self.b.get(j..).and_then(<[u8]>::first_chunk::<8>) else {
                break;
            };
            let w = u64::from_le_bytes(*chunk);
            let (q, s) = (w ^ QUOTE, w ^ BACKSLASH);
            // A byte of `q` or `s` is zero where `w` has a quote or backslash; the lowest
            // flagged byte is exact (borrows only ever flag bytes above a real match).
            let hits = ((q.wrapping_sub(ONES) & !q) | (s.wrapping_sub(ONES) & !s)) & HIGH;
            if hits != 0 {
                return Ok(j + (hits.trailing_zeros() / 8) as usize);
            }
            j += 8;
        }
        let rest = self.b.get(j..).ok_or(bad("unterminated string"))?;
        memchr::memchr2(b'"', b'\\', rest)
            .map(|k| j + k)
            .ok_or(bad("unterminated string"))
    }

    /// Text of a string's contents, decoded when it has escapes.
    fn text(&self, (s, e, escaped): (usize, usize, bool)) -> Result<String, PruneError> {
        let raw = self.b.get(s..e).ok_or(bad("string"))?;
        if escaped {
            let quoted = self.b.get(s - 1..e + 1).ok_or(bad("string"))?;
            serde_json::from_slice(quoted).map_err(|_| bad("bad string escape"))
        } else {
            std::str::from_utf8(raw)
                .map(str::to_owned)
                .map_err(|_| bad("string is not UTF-8"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), PruneError> {
        if depth > MAX_DEPTH {
            return Err(bad("nested too deeply"));
        }
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(depth).map(|_| ()),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| {
                    c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                }) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(bad("not JSON")),
        }
    }

    fn word(&mut self, w: &[u8]) -> Result<(), PruneError> {
        if self.b.get(self.i..self.i + w.len()) == Some(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(bad("not JSON"))
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), PruneError> {
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(bad("bad array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<ObjectInfo, PruneError> {
        let start = self.i;
        self.i += 1;
        let (mut ty, mut ns) = (false, false);
        let mut props: Option<ObjectInfo> = None;
        let mut earlier: Option<String> = None;
        let mut info = ObjectInfo::default();
        let mut patch = false;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(info);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(bad("bad object key"));
            }
            let key = self.string()?;
            let raw = self.b.get(key.0..key.1).ok_or(bad("key"))?;
            let name: std::borrow::Cow<'_, [u8]> = if key.2 {
                std::borrow::Cow::Owned(self.text(key)?.into_bytes())
            } else {
                std::borrow::Cow::Borrowed(raw)
            };
            self.ws();
            if self.peek() != Some(b':') {
                return Err(bad("bad object"));
            }
            self.i += 1;
            self.ws();
            let at = self.i;
            let first = self.peek();
            match (&*name, first) {
                (b"props", Some(b'{')) => {
                    let again = self.object(depth + 1)?;
                    // A repeated `props` member: a parser keeps the last, but the earlier
                    // one's bytes would still be sent, so a hidden id in any of them counts.
                    if let Some(ObjectInfo { id: Some(id) }) = props {
                        if earlier.is_none() {
                            earlier = self.hidden_by(id)?;
                        }
                    }
                    props = Some(again);
                }
                (b"type", Some(b'"')) => {
                    ty = true;
                    self.value(depth + 1)?;
                }
                (b"namespace", Some(b'"')) => {
                    ns = true;
                    self.value(depth + 1)?;
                }
                (b"sideUpdate" | b"progress" | b"progressDefault", Some(b'{'))
                    if depth == 0 && self.kind == Kind::Callback =>
                {
                    self.value(depth + 1)?;
                    let member = if &*name == b"sideUpdate" {
                        Member::SideUpdate
                    } else {
                        Member::Progress
                    };
                    self.members.push((member, (at, self.i)));
                }
                _ => self.value(depth + 1)?,
            }
            if &*name == PATCH_KEY.as_bytes() && self.kind == Kind::Callback {
                patch = true;
            }
            if &*name == b"id" {
                info.id = Some((at, self.i));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(bad("bad object")),
            }
        }
        if patch {
            // Read whole, as a parsed value, by the caller: what is inside goes with it.
            self.drop_inner(start);
            self.patches.push((start, self.i));
            return Ok(info);
        }
        if let (true, true, Some(info)) = (ty, ns, &props) {
            let with = match (earlier, info.id) {
                (Some(with), _) => Some(with),
                (None, Some(id)) => self.hidden_by(id)?,
                (None, None) => None,
            };
            if let Some(with) = with {
                // Inner splices and patches go with the component that holds them.
                self.drop_inner(start);
                self.splices.push(Splice {
                    start,
                    end: self.i,
                    with,
                });
            }
        }
        Ok(info)
    }

    /// Forget the splices and patches found inside a value that starts at `start`.
    fn drop_inner(&mut self, start: usize) {
        while self.splices.last().is_some_and(|s| s.start >= start) {
            self.splices.pop();
        }
        while self.patches.last().is_some_and(|p| p.0 >= start) {
            self.patches.pop();
        }
    }

    /// The replacement for a component with the id at this range, if it is hidden.
    fn hidden_by(&self, (s, e): (usize, usize)) -> Result<Option<String>, PruneError> {
        let raw = self.b.get(s..e).ok_or(bad("id"))?;
        let rule = match raw.first() {
            Some(b'"') => {
                let inner = raw.get(1..raw.len() - 1).ok_or(bad("id"))?;
                if inner.contains(&b'\\') {
                    self.hidden.rule_for_str(&self.text((s + 1, e - 1, true))?)
                } else {
                    let text = std::str::from_utf8(inner).map_err(|_| bad("id is not UTF-8"))?;
                    self.hidden.rule_for_str(text)
                }
            }
            Some(b'{') => {
                let id: Json = serde_json::from_slice(raw).map_err(|_| bad("bad id"))?;
                self.hidden.rule_for(&id)
            }
            _ => return Ok(None),
        };
        Ok(rule.map(|rule| replacement(rule).to_string()))
    }
}

/// Scan `b` (one JSON value) for hidden components.
pub fn scan(b: &[u8], hidden: &Hidden, kind: Kind) -> Result<Found, PruneError> {
    let mut s = Scan {
        b,
        i: 0,
        hidden,
        kind,
        splices: Vec::new(),
        members: Vec::new(),
        patches: Vec::new(),
    };
    s.ws();
    let root_start = s.i;
    s.value(0)?;
    let root_end = s.i;
    s.ws();
    if s.i != b.len() {
        return Err(bad("text after the JSON value"));
    }
    Ok(Found {
        splices: s.splices,
        root: (root_start, root_end),
        members: s.members,
        patches: s.patches,
    })
}

/// `b` with the splices applied (sorted, not overlapping).
pub fn apply(b: &[u8], splices: &[Splice]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut at = 0;
    for s in splices {
        out.extend_from_slice(&b[at..s.start]);
        out.extend_from_slice(s.with.as_bytes());
        at = s.end;
    }
    out.extend_from_slice(&b[at..]);
    out
}
