#!/usr/bin/env python3
"""A saved plan's LDAP operations as `ldapmodify` input, to time a directory's own part of a run.

    roster plan --out plan.json && python3 scripts/plan2ldif.py plan.json > changes.ldif
    ldapmodify -c -x -H URL -D ADMIN -w PASSWORD -f changes.ldif

In the apply's order: creates, disables, member removals, renames, updates, new groups, member
additions; each group's removals (and additions) in one modify, as roster sends them. A by-hand
measuring aid for docs/benchmarks.md ("Seventeenth pass"), not part of roster: it writes what a
plan of an OpenLDAP target holds (no passwords, no AD specifics) and nothing else.
"""
import json, sys, base64
from collections import OrderedDict
p = json.load(open(sys.argv[1]))
ops = p['operations']
out = []
def val(a, v):
    if v.isascii() and v == v.strip() and not v.startswith((':', '<')) and '\n' not in v:
        return f"{a}: {v}"
    return f"{a}:: {base64.b64encode(v.encode()).decode()}"
def rdn_parent(dn):
    # split at the first unescaped comma
    i = 0
    while i < len(dn):
        if dn[i] == '\\': i += 2; continue
        if dn[i] == ',': return dn[:i], dn[i+1:]
        i += 1
    return dn, ''
by = lambda k: [o for o in ops if o['op'] == k]
for o in by('create'):
    out.append([f"dn: {o['dn']}", "changetype: add"] + [val(a, v) for a, vs in o['attributes'].items() for v in vs])
for o in by('disable'):
    l = [f"dn: {o['dn']}", "changetype: modify"]
    for c in o['changes']:
        l += [f"replace: {c['attr']}"] + [val(c['attr'], v) for v in c['new']] + ['-']
    out.append(l)
def members(kind):
    g = OrderedDict()
    for o in by(kind): g.setdefault(o['group'], []).append(o['member'])
    for grp, ms in g.items():
        out.append([f"dn: {grp}", "changetype: modify", ("delete" if kind == 'remove_member' else "add") + ": member"] + [val('member', m) for m in ms] + ['-'])
members('remove_member')
for o in by('rename'):
    rdn, parent = rdn_parent(o['new_dn'])
    out.append([f"dn: {o['dn']}", "changetype: modrdn", val('newrdn', rdn), "deleteoldrdn: 1", val('newsuperior', parent)])
for o in by('update'):
    l = [f"dn: {o.get('new_dn') or o['dn']}", "changetype: modify"]
    for c in o['changes']:
        l += [f"replace: {c['attr']}"] + [val(c['attr'], v) for v in c['new']] + ['-']
    out.append(l)
for o in by('create_group'):
    out.append([f"dn: {o['dn']}", "changetype: add"] + [val(a, v) for a, vs in o['attributes'].items() for v in vs] + [val('member', m) for m in o['members']])
members('add_member')
print('\n\n'.join('\n'.join(l) for l in out))
