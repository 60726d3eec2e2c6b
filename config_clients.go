package main

// checkDistinctClients refuses two tenants that share an issuer and a
// client_id: the IdP issues one client's tokens, which verify at both, so a
// person of one tenant would register under the other. The error names the
// later tenant's client_id and the tenant it clashes with.
func checkDistinctClients(ts []tenantConfig) error {
	seen := make(map[[2]string]int, len(ts))
	for i, t := range ts {
		k := [2]string{t.Issuer, t.ClientID}
		if j, dup := seen[k]; dup {
			return configErrorf("tenants[%d].client_id: %s at issuer %s is also the client of tenants[%d] (%s): a token of one would register under the other",
				i, printable(t.ClientID), printable(t.Issuer), j, ts[j].ID)
		}
		seen[k] = i
	}
	return nil
}
