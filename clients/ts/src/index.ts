// A typed client of the credits interface (docs/API.md): each function is one call of a
// function in the credits schema, through the `pg` driver. The database keeps every rule; this
// file only names the arguments, types the answers and turns refusals into typed errors.
//
// Numbers: every amount, balance, id and cursor is a JavaScript `number`. The schema keeps
// amounts at most 2147483647 and balances and ids far below 2^53; a value past
// Number.MAX_SAFE_INTEGER (which a `number` would round) throws a RangeError instead.
import type { QueryResult, QueryResultRow } from "pg";

/** The refusals' SQLSTATEs: match `err.code`, never the message's text. */
export const CODES = {
  INSUFFICIENT_CREDITS: "CR001",
  REFERENCE_REUSED: "CR002",
  OVER_BALANCE_CAP: "CR003",
  UNKNOWN_PACKAGE: "CR004",
  UNKNOWN_SERVICE: "CR005",
  UNKNOWN_REFERENCE: "CR006",
  NO_REGISTRATION_BONUS: "CR007",
  NOT_VOIDABLE: "CR008",
} as const;

export type RefusalCode = (typeof CODES)[keyof typeof CODES];

/** What runs a query: a pg Pool, or a PoolClient inside the app's own transaction. */
export interface Queryable {
  query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

export type Source = "purchase" | "bonus" | "registration" | "promotion" | "adjustment";
export type Metadata = { [key: string]: unknown };

export interface Grant {
  user_id: string;
  reference_id: string;
  batch_id: number;
  source: Source;
  amount: number;
  expires_at: string | null;
  balance: number;
  replayed: boolean;
}

export interface PackGrant extends Grant {
  package_id: string;
  credits: number;
  bonus: number;
}

export interface CanBuy {
  allowed: boolean;
  user_id: string;
  package_id: string;
  amount: number;
  balance: number;
  max_balance: number | null;
}

export interface Draw {
  batch_id: number;
  amount: number;
  expires_at?: string | null;
}

export interface Spend {
  user_id: string;
  reference_id: string;
  amount: number;
  service: string | null;
  balance: number;
  draws: Draw[] | null;
  replayed: boolean;
  reversed: boolean;
}

export interface Reversal {
  user_id: string;
  reference_id: string;
  returned: number;
  lapsed: number;
  balance: number;
  entries: { type: "reverse" | "lapse"; amount: number; batch_id: number }[];
  replayed: boolean;
}

export interface Void {
  user_id: string;
  reference_id: string;
  batch_id: number;
  source: Source;
  amount: number;
  voided: number;
  spent: number;
  expired: number;
  balance: number;
  replayed: boolean;
}

export interface Account {
  user_id: string;
  balance: number;
  spendable: number;
  next_expiry: { amount: number; expires_at: string } | null;
  next_grant: { date: string; amount: number } | null;
}

export type EntryType = "grant" | "consume" | "expire" | "reverse" | "lapse" | "void";

export interface Entry {
  entry_id: number;
  created_at: Date;
  type: EntryType;
  amount: number;
  balance_after: number | null;
  reference_id: string;
  service: string | null;
  metadata: Metadata | null;
  batch_id: number;
  source: Source;
  expires_at: Date | null;
}

/** A page of the statement, newest first; next_cursor is `before` for the next page. */
export interface StatementPage {
  entries: Entry[];
  next_cursor: number | null;
}

/** A refusal (CR001-CR008) or a bad argument (SQLSTATE class 22); the call changed nothing.
 * `detail` holds the numbers the message says (e.g. CR001: spendable and asked) when the
 * database gave them. */
export class CreditsError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly detail: Metadata | null,
  ) {
    super(message);
    this.name = code.startsWith("CR") ? "CreditsRefused" : "CreditsInvalidArgument";
  }

  /** Whether this is the refusal `code` (one of CODES). */
  is(code: RefusalCode): boolean {
    return this.code === code;
  }
}

/** CR001's detail: how many credits were spendable and how many were asked for. */
export interface InsufficientCreditsDetail {
  user_id: string;
  spendable: number;
  asked: number;
}

export async function grantCredits(
  db: Queryable,
  request: {
    userId: string;
    amount: number;
    source: Source;
    referenceId: string;
    validityDays?: number;
    expiresAt?: Date | string;
    metadata?: Metadata;
  },
): Promise<Grant> {
  return answer<Grant>(
    db,
    "SELECT credits.grant_credits($1, $2, $3, $4, validity_days => $5, expires_at => $6, " +
      "metadata => $7::jsonb) AS answer",
    [
      request.userId,
      request.amount,
      request.source,
      request.referenceId,
      request.validityDays ?? null,
      request.expiresAt ?? null,
      json(request.metadata),
    ],
  );
}

export async function canBuyPackage(db: Queryable, userId: string, packageId: string): Promise<CanBuy> {
  return answer<CanBuy>(db, "SELECT credits.can_buy_package($1, $2) AS answer", [userId, packageId]);
}

export async function buyPackage(
  db: Queryable,
  userId: string,
  packageId: string,
  referenceId: string,
): Promise<PackGrant> {
  return answer<PackGrant>(db, "SELECT credits.buy_package($1, $2, $3) AS answer", [
    userId,
    packageId,
    referenceId,
  ]);
}

export async function grantRegistrationBonus(db: Queryable, userId: string): Promise<Grant> {
  return answer<Grant>(db, "SELECT credits.grant_registration_bonus($1) AS answer", [userId]);
}

export async function spend(
  db: Queryable,
  userId: string,
  amount: number,
  referenceId: string,
  metadata?: Metadata,
): Promise<Spend> {
  return answer<Spend>(db, "SELECT credits.spend($1, $2, $3, $4::jsonb) AS answer", [
    userId,
    amount,
    referenceId,
    json(metadata),
  ]);
}

export async function spendService(
  db: Queryable,
  userId: string,
  service: string,
  quantity: number,
  referenceId: string,
  metadata?: Metadata,
): Promise<Spend> {
  return answer<Spend>(db, "SELECT credits.spend_service($1, $2, $3, $4, $5::jsonb) AS answer", [
    userId,
    service,
    quantity,
    referenceId,
    json(metadata),
  ]);
}

export async function reverseSpend(db: Queryable, userId: string, referenceId: string): Promise<Reversal> {
  return answer<Reversal>(db, "SELECT credits.reverse_spend($1, $2) AS answer", [userId, referenceId]);
}

export async function voidGrant(db: Queryable, referenceId: string): Promise<Void> {
  return answer<Void>(db, "SELECT credits.void_grant($1) AS answer", [referenceId]);
}

export async function account(
  db: Queryable,
  userId: string,
  eligibleStatuses: string[] = ["active"],
): Promise<Account> {
  return answer<Account>(db, "SELECT credits.account($1, $2) AS answer", [userId, eligibleStatuses]);
}

/** One page of the user's ledger entries, newest first (limit 1 to 100). */
export async function statement(
  db: Queryable,
  userId: string,
  page: { limit?: number; before?: number | null } = {},
): Promise<StatementPage> {
  const limit = page.limit ?? 50;
  // The bigint columns as text, read here with the one rule for numbers (safeNumber).
  const rows = await call<RawEntry>(
    db,
    "SELECT entry_id::text, created_at, type, amount, balance_after::text, reference_id, " +
      "service, metadata, batch_id::text, source, expires_at " +
      "FROM credits.statement($1, $2, $3)",
    [userId, limit, page.before ?? null],
  );
  const entries = rows.map(
    (row): Entry => ({
      ...row,
      entry_id: safeNumber(row.entry_id),
      balance_after: row.balance_after === null ? null : safeNumber(row.balance_after),
      batch_id: safeNumber(row.batch_id),
    }),
  );
  const last = entries[entries.length - 1];
  return { entries, next_cursor: entries.length === limit && last ? last.entry_id : null };
}

type RawEntry = Omit<Entry, "entry_id" | "balance_after" | "batch_id"> & {
  entry_id: string;
  balance_after: string | null;
  batch_id: string;
};

/** A writing function's JSON answer, its numbers checked. */
async function answer<T>(db: Queryable, text: string, values: unknown[]): Promise<T> {
  const [row] = await call<{ answer: T }>(db, text, values);
  if (!row) throw new Error("the function answered no row");
  checkNumbers(row.answer);
  return row.answer;
}

/** The query's rows; a refusal or a bad argument as a CreditsError. */
async function call<R extends QueryResultRow>(db: Queryable, text: string, values: unknown[]): Promise<R[]> {
  try {
    return (await db.query<R>(text, values)).rows;
  } catch (err) {
    throw asCreditsError(err);
  }
}

/** A pg error with a CR or class-22 SQLSTATE as a CreditsError; anything else as it was. */
export function asCreditsError(err: unknown): unknown {
  if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "string") return err;
  const code = err.code;
  if (!code.startsWith("CR") && !code.startsWith("22")) return err;
  const detail = "detail" in err && typeof err.detail === "string" ? parseDetail(err.detail) : null;
  return new CreditsError(err.message, code, detail);
}

function parseDetail(text: string): Metadata | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Metadata) : null;
  } catch {
    return null; // a detail that is not JSON: the message says it all
  }
}

/** A bigint column's text as a number, never rounded. */
function safeNumber(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`${text} is beyond a safe JavaScript integer`);
  return value;
}

/** Throw rather than hand back a number JSON.parse has already rounded. */
function checkNumbers(value: unknown): void {
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    throw new RangeError(`${value} is beyond a safe JavaScript integer`);
  }
  if (typeof value === "object" && value !== null) Object.values(value).forEach(checkNumbers);
}

function json(metadata: Metadata | undefined): string | null {
  return metadata === undefined ? null : JSON.stringify(metadata);
}
