// Telemetry: the pen's periodic state record, decoded into named, unit-bearing fields.
import {
  faultInfo, InputBit, penStateInfo, TelemetryFlag, type FaultName, type MessageFields, type PenStateName,
} from '../hardware/generated/protocol.ts';

export interface Telemetry {
  readonly state: PenStateName;
  readonly fault: FaultName;
  readonly faultText: string;
  readonly uptimeMs: number;
  readonly homed: boolean;
  readonly cartridgeCleared: boolean;
  readonly moving: boolean;
  readonly needleOn: boolean;
  readonly estopTripped: boolean;
  readonly homeSwitchPressed: boolean;
  readonly cartridgePresent: boolean;
  readonly footswitchPressed: boolean;
  /** Needle depth from the step count, the independent depth sensor, and the move's target. */
  readonly depthMm: number;
  readonly sensedDepthMm: number;
  readonly targetDepthMm: number;
  readonly strokesPerSecond: number;
  readonly needleSetpointStrokesPerSecond: number;
  readonly motorCurrentMa: number;
  readonly motorDuty: number;
  readonly temperatureC: number;
  readonly supplyVolts: number;
  /** Frames the pen rejected (bad length, CRC or sync) and bytes it dropped resynchronising. */
  readonly penRxFramesBad: number;
  readonly penRxBytesDropped: number;
}

const bit = (bits: number, index: number): boolean => ((bits >> index) & 1) === 1;

export function decodeTelemetry(fields: MessageFields['telemetry']): Telemetry {
  const fault = faultInfo[fields.faultCode];
  return {
    state: penStateInfo[fields.state]?.name ?? 'fault',
    fault: fault?.name ?? 'none',
    faultText: fault?.text ?? `unknown fault code ${fields.faultCode}`,
    uptimeMs: fields.uptimeMs,
    homed: bit(fields.flags, TelemetryFlag.homed),
    cartridgeCleared: bit(fields.flags, TelemetryFlag.cartridge_cleared),
    moving: bit(fields.flags, TelemetryFlag.moving),
    needleOn: bit(fields.flags, TelemetryFlag.needle_on),
    estopTripped: bit(fields.inputs, InputBit.estop),
    homeSwitchPressed: bit(fields.inputs, InputBit.home_switch),
    cartridgePresent: bit(fields.inputs, InputBit.cartridge_present),
    footswitchPressed: bit(fields.inputs, InputBit.footswitch),
    depthMm: fields.depthUm / 1000,
    sensedDepthMm: fields.sensedDepthUm / 1000,
    targetDepthMm: fields.targetDepthUm / 1000,
    strokesPerSecond: fields.strokesPerSecondX100 / 100,
    needleSetpointStrokesPerSecond: fields.needleSetpoint,
    motorCurrentMa: fields.motorCurrentMa,
    motorDuty: fields.motorDuty / 255,
    temperatureC: fields.temperatureDeciC / 10,
    supplyVolts: fields.supplyMv / 1000,
    penRxFramesBad: fields.rxFramesBad,
    penRxBytesDropped: fields.rxBytesDropped,
  };
}
