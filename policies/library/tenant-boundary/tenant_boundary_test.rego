package mandate.authz

import rego.v1

party(id, kind, tenant) := {"id": id, "kind": kind, "attributes": {"tenant": tenant}}

base := {
	"version": 1,
	"tenant": "acme",
	"subject": party("alice", "human", "acme"),
	"actors": [party("agent-1", "agent", "acme"), party("agent-0", "agent", "acme")],
	"client": party("app", "service", "acme"),
	"action": "orders.write",
	"resource": {"type": "order", "id": "o-1", "attributes": {"tenant": "acme"}},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": 1000},
}

codes(d) := [r.code | some r in d.reasons]

test_all_in_the_tenant if {
	d := decision with input as base
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_without_client if {
	decision.allow with input as object.remove(base, ["client"])
}

test_without_actors if {
	decision.allow with input as base with input.actors as []
}

# Parties of other tenants

test_foreign_subject if {
	d := decision with input as base with input.subject as party("mallory", "human", "initech")
	not d.allow
	d.reasons == [{"code": "subject_foreign_tenant", "message": "the subject mallory belongs to initech, which is not acme and not trusted by the resource's tenant"}]
}

test_foreign_actor_deep_in_the_chain if {
	d := decision with input as base with input.actors as [party("agent-1", "agent", "acme"), party("agent-x", "agent", "initech")]
	not d.allow
	d.reasons == [{"code": "actor_foreign_tenant", "message": "actor agent-x belongs to initech, which is not acme and not trusted by the resource's tenant"}]
}

test_every_foreign_actor_reported if {
	d := decision with input as base with input.actors as [party("a", "agent", "initech"), party("b", "agent", "hooli")]
	codes(d) == ["actor_foreign_tenant", "actor_foreign_tenant"]
}

test_foreign_client if {
	d := decision with input as base with input.client as party("app", "service", "initech")
	codes(d) == ["client_foreign_tenant"]
}

test_foreign_resource if {
	d := decision with input as base with input.resource.attributes.tenant as "initech"
	not d.allow
	d.reasons == [{"code": "resource_foreign_tenant", "message": "the resource belongs to initech, which does not trust acme"}]
}

# Missing tenants never pass

test_party_without_tenant if {
	d := decision with input as base with input.client as {"id": "app", "kind": "service", "attributes": {}}
	not d.allow
	d.reasons == [{"code": "tenant_unknown", "message": "the client app has no tenant"}]
}

test_actor_without_tenant_or_id if {
	d := decision with input as base with input.actors as [{"kind": "agent", "attributes": {}}]
	d.reasons == [{"code": "tenant_unknown", "message": "actor has no tenant"}]
}

test_resource_without_tenant if {
	d := decision with input as base with input.resource.attributes as {}
	not d.allow
	d.reasons == [{"code": "tenant_unknown", "message": "the resource has no tenant"}]
}

test_no_subject if {
	d := decision with input as object.remove(base, ["subject"])
	not d.allow
	codes(d) == ["tenant_unknown"]
}

# Trust of the resource's tenant (data.tenant_boundary.trusts)

test_trusted_for_every_action if {
	decision.allow with input as base with input.actors as [party("agent-eu", "agent", "acme-eu")]
	decision.allow with input as base with input.subject as party("erik", "human", "acme-eu")
}

test_trusted_for_some_actions if {
	r := object.union(base, {"actors": [party("agent-g", "agent", "globex")]})
	decision.allow with input as object.union(r, {"action": "orders.read"})
	decision.allow with input as object.union(r, {"action": "catalog.read"})
	d := decision with input as r
	codes(d) == ["actor_foreign_tenant"]
}

test_trust_is_the_resource_tenants if {
	# acme trusts globex, but a resource of acme-eu does not.
	r := object.union(base, {
		"action": "orders.read",
		"actors": [party("agent-g", "agent", "globex")],
		"resource": {"attributes": {"tenant": "acme-eu"}},
	})
	d := decision with input as r
	codes(d) == ["actor_foreign_tenant"]
}

test_resource_of_a_tenant_trusting_the_deciding_one if {
	# acme-eu trusts acme: acme's parties may reach acme-eu's resources, and so may acme-eu's own.
	r := object.union(base, {"resource": {"attributes": {"tenant": "acme-eu"}}, "actors": [party("agent-eu", "agent", "acme-eu")]})
	decision.allow with input as r
}

test_trust_is_not_symmetric if {
	# acme trusts globex (for reads), but globex does not trust acme: deciding in acme, a resource
	# of globex is out of bounds.
	d := decision with input as object.union(base, {"action": "orders.read"}) with input.resource.attributes.tenant as "globex"
	codes(d) == ["resource_foreign_tenant"]
}

test_trust_for_some_actions_covers_the_resource_too if {
	trusts := {"globex": [{"tenant": "acme", "actions": ["catalog.*"]}]}
	r := object.union(base, {"resource": {"attributes": {"tenant": "globex"}}})
	decision.allow with input as object.union(r, {"action": "catalog.read"}) with data.tenant_boundary.trusts as trusts
	d := decision with input as r with data.tenant_boundary.trusts as trusts
	codes(d) == ["resource_foreign_tenant"]
}

test_no_trust_configured if {
	d := decision with input as base with input.actors as [party("agent-eu", "agent", "acme-eu")] with data.tenant_boundary as {}
	codes(d) == ["actor_foreign_tenant"]
}

test_several_reasons_sorted if {
	client := {"id": "app", "kind": "service", "attributes": {}}
	d := decision with input as base with input.subject as party("m", "human", "initech") with input.client as client
	codes(d) == ["subject_foreign_tenant", "tenant_unknown"]
}
