/**
 * What a verified workload token attested about the workload presenting it (README "Workload
 * identity federation"), read from the platform's own claims: Kubernetes service account tokens
 * (`kubernetes.io`: namespace, service account), CI tokens (`repository`, `environment`), SPIFFE
 * IDs (`sub`), and an `image_digest` claim where the platform attests the image. Policies read it
 * as `principal.workload` (README "Organisation policies"); a claim the token lacks is absent.
 */
export interface WorkloadClaims {
  issuer: string;
  subject: string;
  namespace?: string;
  service_account?: string;
  image_digest?: string;
  repository?: string;
  environment?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 512 ? v : undefined);

/** The workload claims of a verified token's payload. */
export function workloadClaimsOf(issuer: string, subject: string, payload: Record<string, unknown>): WorkloadClaims {
  const k8s = (payload['kubernetes.io'] ?? {}) as { namespace?: unknown; serviceaccount?: { name?: unknown } };
  const out: WorkloadClaims = { issuer, subject };
  const namespace = str(k8s.namespace) ?? str(payload.namespace);
  const serviceAccount = str(k8s.serviceaccount?.name) ?? str(payload.service_account);
  const imageDigest = str(payload.image_digest);
  const repository = str(payload.repository);
  const environment = str(payload.environment);
  if (namespace) out.namespace = namespace;
  if (serviceAccount) out.service_account = serviceAccount;
  if (imageDigest) out.image_digest = imageDigest;
  if (repository) out.repository = repository;
  if (environment) out.environment = environment;
  return out;
}
