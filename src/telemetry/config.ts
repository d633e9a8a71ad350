import { z } from 'zod';

/** Telemetry configuration (owned by the telemetry concern). Stub: extended by the telemetry work. */
export const telemetrySchema = z.object({}).passthrough();
export type TelemetryConfig = z.infer<typeof telemetrySchema>;
