//! The shape of the fixture zones as the corpus generator needs it: which names own data,
//! which are empty non-terminals, wildcards, delegations and DNAMEs, and which category of
//! lookup (RFC 1034 4.3.2, RFC 4592, RFC 6672) a query name falls into.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::Path;

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::{parse_ttl, Parser};

/// What kind of lookup a query name is, judged from the zones' structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// A zone's apex.
    Apex,
    /// A name owning data, not a CNAME, wildcard or DNAME.
    Existing,
    /// A name owning a CNAME.
    Alias,
    /// A name owning nothing but with names below it (RFC 4592 2.2.2).
    EmptyNonTerminal,
    /// A wildcard's own name, `*.wild`, asked literally.
    WildcardLiteral,
    /// One label below a wildcard's parent, with no name of its own: synthesized.
    UnderWildcard,
    /// Several labels below a wildcard's parent: synthesized too.
    UnderWildcardDeep,
    /// A non-existent sibling of an existing name (no wildcard covers it).
    NxSibling,
    /// A non-existent child of a name that has other children.
    NxChild,
    /// A non-existent child of a leaf.
    NxBelowLeaf,
    /// A delegation point (NS below the apex).
    Delegation,
    /// A name below a delegation that has no data here.
    BelowDelegation,
    /// A name below a delegation that has data here (glue).
    Glue,
    /// A DNAME's owner.
    Dname,
    /// A name below a DNAME (the DNAME substitutes it).
    UnderDname,
    /// A name in no zone served: the server must refuse it.
    OutOfZone,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths in format strings line up the statistics.
        f.pad(&format!("{self:?}"))
    }
}

/// One zone: its origin, owners with their types, and its DNAMEs (owner to target).
#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    pub owners: BTreeMap<Name, BTreeSet<RecordType>>,
    pub empty_non_terminals: BTreeSet<Name>,
    pub dnames: BTreeMap<Name, Name>,
}

impl Zone {
    /// Parses a zone file with hickory's parser. Panics with the file's name on any error: a
    /// broken fixture is a bug in the test, not something to skip.
    pub fn load(origin: &str, path: &Path) -> Zone {
        let origin = lowercase_fqdn(origin, &Name::root())
            .unwrap_or_else(|e| panic!("bad origin {origin:?} for {}: {e}", path.display()));
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let (text, dnames) = strip_dnames(&text, &origin)
            .unwrap_or_else(|e| panic!("{}: DNAME line the corpus cannot read: {e}", path.display()));
        let (_, records) = Parser::new(text, Some(path.to_path_buf()), Some(origin.clone()))
            .parse()
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let mut owners: BTreeMap<Name, BTreeSet<RecordType>> = BTreeMap::new();
        for rrset in records.values() {
            owners.entry(rrset.name().to_lowercase()).or_default().insert(rrset.record_type());
        }
        for owner in dnames.keys() {
            owners.entry(owner.clone()).or_default().insert(RecordType::DNAME);
        }
        let mut empty_non_terminals = BTreeSet::new();
        for owner in owners.keys() {
            let mut name = owner.base_name();
            while is_below(&name, &origin) {
                if !owners.contains_key(&name) {
                    empty_non_terminals.insert(name.clone());
                }
                name = name.base_name();
            }
        }
        Zone { origin, owners, empty_non_terminals, dnames }
    }

    /// Owners of NS records other than the apex: the zone's cuts.
    pub fn cuts(&self) -> impl Iterator<Item = &Name> {
        self.owners.iter().filter(|(n, t)| **n != self.origin && t.contains(&RecordType::NS)).map(|(n, _)| n)
    }

    /// Whether `name` owns data or is an empty non-terminal.
    pub fn exists(&self, name: &Name) -> bool {
        self.owners.contains_key(name) || self.empty_non_terminals.contains(name)
    }

    /// Whether nothing exists below `name`.
    pub fn is_leaf(&self, name: &Name) -> bool {
        !self.owners.keys().chain(&self.empty_non_terminals).any(|other| is_below(other, name))
    }

    /// Whether `name` is below a cut or a DNAME, where the zone's own data ends.
    pub fn is_occluded(&self, name: &Name) -> bool {
        self.cuts().chain(self.dnames.keys()).any(|top| is_below(name, top))
    }
}

/// The category of `name` among `zones`; `intent` is used for names that do not exist and are
/// not covered by a wildcard (which of the `Nx*` kinds the generator meant).
pub fn classify(zones: &[Zone], name: &Name, intent: Category) -> Category {
    let Some(zone) = zones.iter().filter(|z| z.origin.zone_of(name)).max_by_key(|z| z.origin.num_labels()) else {
        return Category::OutOfZone;
    };
    if *name == zone.origin {
        return Category::Apex;
    }
    if zone.cuts().any(|cut| is_below(name, cut)) {
        return if zone.owners.contains_key(name) { Category::Glue } else { Category::BelowDelegation };
    }
    if zone.cuts().any(|cut| cut == name) {
        return Category::Delegation;
    }
    if zone.dnames.keys().any(|owner| is_below(name, owner)) {
        return Category::UnderDname;
    }
    if let Some(types) = zone.owners.get(name) {
        return if types.contains(&RecordType::DNAME) {
            Category::Dname
        } else if name.is_wildcard() {
            Category::WildcardLiteral
        } else if types.contains(&RecordType::CNAME) {
            Category::Alias
        } else {
            Category::Existing
        };
    }
    if zone.empty_non_terminals.contains(name) {
        return Category::EmptyNonTerminal;
    }
    // RFC 4592 3.3.1: the closest encloser, and whether it has a wildcard child.
    let mut encloser = name.base_name();
    while !zone.exists(&encloser) && encloser != zone.origin {
        encloser = encloser.base_name();
    }
    let wildcard = encloser.clone().prepend_label("*").map(|w| zone.owners.contains_key(&w)).unwrap_or(false);
    match (wildcard, name.num_labels() - encloser.num_labels()) {
        (true, 1) => Category::UnderWildcard,
        (true, _) => Category::UnderWildcardDeep,
        (false, _) => intent,
    }
}

/// Whether `name` is strictly below `ancestor`.
pub fn is_below(name: &Name, ancestor: &Name) -> bool {
    name != ancestor && ancestor.zone_of(name)
}

/// `text` (absolute, relative to `origin`, or `@`) as a lowercase absolute name.
pub fn lowercase_fqdn(text: &str, origin: &Name) -> Result<Name, String> {
    let name = match text {
        "@" => origin.clone(),
        "." => Name::root(),
        _ => Name::parse(text, Some(origin)).map_err(|e| e.to_string())?,
    };
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}

/// hickory's zone parser does not know DNAME, so DNAME lines are taken out of the text here and
/// returned as (owner, target). A DNAME line with an owner is replaced by that owner alone, which
/// sets the "current owner" for owner-less lines after it without adding a record. DNAME records
/// must fit on one line (no parentheses).
fn strip_dnames(text: &str, origin: &Name) -> Result<(String, BTreeMap<Name, Name>), String> {
    let mut origin = origin.clone();
    let mut last_owner: Option<Name> = None;
    let mut paren_depth = 0usize;
    let mut out = String::with_capacity(text.len());
    let mut dnames = BTreeMap::new();
    for line in text.lines() {
        let code = code_part(line);
        let tokens: Vec<&str> = code.split_whitespace().collect();
        let keep = |out: &mut String| {
            out.push_str(line);
            out.push('\n');
        };
        if paren_depth > 0 || tokens.is_empty() {
            paren_depth = update_depth(paren_depth, code);
            keep(&mut out);
            continue;
        }
        if tokens[0].eq_ignore_ascii_case("$ORIGIN") {
            origin = lowercase_fqdn(tokens.get(1).copied().unwrap_or(""), &Name::root())?;
            keep(&mut out);
            continue;
        }
        if tokens[0].starts_with('$') {
            keep(&mut out);
            continue;
        }
        let owner_less = line.starts_with([' ', '\t']);
        let rest = if owner_less {
            &tokens[..]
        } else {
            last_owner = Some(lowercase_fqdn(tokens[0], &origin)?);
            &tokens[1..]
        };
        let rtype = rest.iter().find(|t| parse_ttl(t).is_err() && !is_class(t));
        if rtype.is_some_and(|t| t.eq_ignore_ascii_case("DNAME")) {
            let owner = last_owner.clone().ok_or_else(|| format!("DNAME without owner: {line:?}"))?;
            let target = rest.last().ok_or_else(|| format!("DNAME without target: {line:?}"))?;
            dnames.insert(owner, lowercase_fqdn(target, &origin)?);
            if !owner_less {
                out.push_str(tokens[0]);
            }
            out.push('\n');
            continue;
        }
        paren_depth = update_depth(paren_depth, code);
        keep(&mut out);
    }
    Ok((out, dnames))
}

fn is_class(token: &str) -> bool {
    ["IN", "CH", "HS", "CS"].iter().any(|c| token.eq_ignore_ascii_case(c))
}

/// The line up to its comment (a `;` outside quotes).
fn code_part(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn update_depth(depth: usize, code: &str) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    let mut depth = depth;
    for c in code.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}
