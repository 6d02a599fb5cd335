<#
.SYNOPSIS
  Removes the tokenplace-gpuhost service (Windows PowerShell 5.1, elevated).

.DESCRIPTION
  Stops the service (waiting for the grace period), deletes it, removes its
  Event Log source and firewall rule. The checkout and its .venv are never
  touched. -Purge also deletes -InstallDir (exe, gpuhost.ini, logs).
#>
[CmdletBinding()]
param(
    [string]$InstallDir = "$env:ProgramFiles\tokenplace-gpuhost",
    [switch]$Purge
)
$ErrorActionPreference = "Stop"

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Host "error: run this from an elevated PowerShell" -ForegroundColor Red; exit 1
}
$exe = Join-Path $InstallDir "tokenplace-gpuhost.exe"
$ini = Join-Path $InstallDir "gpuhost.ini"
if (-not (Test-Path $exe)) { Write-Host "error: $exe not found (use -InstallDir)" -ForegroundColor Red; exit 1 }

Write-Host "==> stopping"
& $exe --config $ini stop
Write-Host "==> removing the firewall rule"
& $exe --config $ini firewall remove
Write-Host "==> removing the service and its Event Log source"
& $exe --config $ini uninstall
if ($LASTEXITCODE -ne 0) { Write-Host "error: uninstall failed" -ForegroundColor Red; exit 1 }
if ($Purge) {
    Write-Host "==> deleting $InstallDir"
    Remove-Item -Recurse -Force $InstallDir
} else {
    Write-Host "kept $InstallDir (config and logs); -Purge deletes it"
}
