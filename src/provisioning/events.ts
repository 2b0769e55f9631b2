/**
 * What the provisioning core tells the operators: one event per thing it did, refused or
 * found. The admin-room reporter renders them; the core never knows how.
 */
export type ProvisioningEventKind =
  | 'created'
  | 'adopted'
  | 'updated'
  | 'disabled'
  | 'enabled'
  | 'deleted'
  | 'failed'
  | 'refused'
  | 'drift'
  | 'drift-resolved';

export interface ProvisioningEvent {
  kind: ProvisioningEventKind;
  /** A user (the default) or a group. */
  subject?: 'user' | 'group';
  /** The IdP's userName, or a group's displayName. */
  userName: string;
  /** @alice:example.org once known; for a group, its room ID. */
  matrixId?: string;
  /** For 'updated': the attributes that changed. */
  changed?: string[];
  /**
   * How it was done, shown right after the verb: 'locked', 'suspended' or 'deactivated' for
   * 'disabled'; 'deactivated, not erased' or 'deactivated and erased' for 'deleted'.
   */
  how?: string;
  /** Why it failed, was refused or drifted; an optional detail for the other kinds. */
  reason?: string;
  /** For 'failed': the bridge keeps the change and will retry by itself. */
  willRetry?: boolean;
  /** Name of the IdP token that made the request, e.g. 'entra'. */
  source?: string;
}

export interface EventSink {
  report(event: ProvisioningEvent): void;
}
