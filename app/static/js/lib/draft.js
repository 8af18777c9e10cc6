/* A form's entries kept across a login. When a submission is answered 401 (the session
 * ended, or never began), the page saves what was typed in this tab's sessionStorage just
 * before the login page opens; the form takes it back, once, when it opens again. Only
 * config values are kept, never a token, and nothing leaves the browser. */

const key = () => `rl-draft:${location.pathname}`;

export function keepDraft(values) {
  try {
    sessionStorage.setItem(key(), JSON.stringify(values));
  } catch (e) {
    // storage full or disabled: the login still works, only the entries are lost
  }
}

/** The entries kept for this page, removed as they are read; null when there are none. */
export function takeDraft() {
  let raw = null;
  try {
    raw = sessionStorage.getItem(key());
    sessionStorage.removeItem(key());
  } catch (e) {
    return null;
  }
  try {
    return raw === null ? null : JSON.parse(raw);
  } catch (e) {
    return null;
  }
}
