/* What the server handed this page: ids and static configuration (never user data as HTML). */

export const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");
