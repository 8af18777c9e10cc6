/* Checks a config value against its property in the API's JSON schema (the one the server
 * validates with), so a form says what is wrong before the round trip, in the same words
 * the server's reworded messages use (see humanize in api.js). */

const n = (v) => (typeof v === "number" ? v.toLocaleString("en") : v);

export function kind(prop) {
  if (Array.isArray(prop.enum)) return "enum";
  if (prop.type === "boolean") return "bool";
  if (prop.type === "integer") return "int";
  if (prop.type === "number") return "float";
  return "text";
}

/** The range of a numeric property as text: "1 ≤ x ≤ 1000". */
export function rangeText(prop) {
  const lo = prop.minimum !== undefined ? `${n(prop.minimum)} ≤ ` : prop.exclusiveMinimum !== undefined ? `${n(prop.exclusiveMinimum)} < ` : "";
  const hi = prop.maximum !== undefined ? ` ≤ ${n(prop.maximum)}` : prop.exclusiveMaximum !== undefined ? ` < ${n(prop.exclusiveMaximum)}` : "";
  return lo || hi ? `${lo}x${hi}` : "";
}

/** null when `value` is valid for `prop`, else a short message ("at least 1"). */
export function problem(prop, value) {
  const k = kind(prop);
  if (k === "enum") return prop.enum.includes(value) ? null : `one of ${prop.enum.join(", ")}`;
  if (k === "bool") return typeof value === "boolean" ? null : "yes or no";
  if (k === "int" || k === "float") {
    if (typeof value !== "number" || !Number.isFinite(value)) return k === "int" ? "a whole number, e.g. 10" : "a number, e.g. 0.1";
    if (k === "int" && !Number.isInteger(value)) return "a whole number, e.g. 10";
    if (prop.minimum !== undefined && value < prop.minimum) return `at least ${n(prop.minimum)}`;
    if (prop.exclusiveMinimum !== undefined && value <= prop.exclusiveMinimum) return `more than ${n(prop.exclusiveMinimum)}`;
    if (prop.maximum !== undefined && value > prop.maximum) return `at most ${n(prop.maximum)}`;
    if (prop.exclusiveMaximum !== undefined && value >= prop.exclusiveMaximum) return `less than ${n(prop.exclusiveMaximum)}`;
    return null;
  }
  if (typeof value !== "string") return "text";
  if (prop.pattern && !new RegExp(prop.pattern).test(value)) {
    return prop.examples ? `written like ${prop.examples.slice(0, 2).join(" or ")}` : "not in the expected format";
  }
  if (prop.maxLength !== undefined && value.length > prop.maxLength) return `at most ${n(prop.maxLength)} characters`;
  return null;
}

/** Every problem of a config: [{field, msg}], fields unknown to the schema included. */
export function problems(schema, config) {
  const props = schema.properties || {};
  const out = [];
  for (const [field, value] of Object.entries(config)) {
    if (!props[field]) out.push({ field, msg: "not a field of the config" });
    else {
      const msg = problem(props[field], value);
      if (msg) out.push({ field, msg });
    }
  }
  return out;
}
